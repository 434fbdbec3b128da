"""Fixtures shared by the test packages."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

# paddle 3.3 segfaults when imported after TensorFlow in one process; the Paddle tests import it
# directly, so it is loaded first when installed (the exporter itself moves to a child process instead).
with contextlib.suppress(ImportError):
    import paddle  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Audits cache exports under $XDG_CACHE_HOME/verifier: keep the suite out of the user's real cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(scope="session")
def trained_models() -> dict[str, Path]:
    """Tiny denoisers trained once and committed (see :mod:`trained`); ONNX files, no torch needed."""
    import trained

    return trained.committed()
