"""Fixtures shared by the test packages."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

# paddle 3.3 segfaults when imported after TensorFlow in one process; the Paddle tests import it
# directly, so it is loaded first when installed (the exporter itself moves to a child process instead).
with contextlib.suppress(ImportError):
    import paddle  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the end-to-end audit of the third-party vendor folder are slow and need that folder."""
    for item in items:
        if "audited" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.third_party)


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
