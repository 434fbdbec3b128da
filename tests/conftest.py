"""Fixtures shared by the test packages."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny denoisers trained once per session (see :mod:`trained`)."""
    pytest.importorskip("torch")
    pytest.importorskip("skimage")
    import trained

    return trained.build(tmp_path_factory.mktemp("trained"))
