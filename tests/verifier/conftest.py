"""Fixtures shared by the verifier tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import conv_model, save


@pytest.fixture
def conv_onnx(tmp_path: Path) -> Path:
    """A valid 3-channel NCHW conv model on disk."""
    return save(conv_model(), tmp_path / "conv.onnx")


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny denoisers trained once per session: owner, finetuned, independent, ref_0..ref_2."""
    pytest.importorskip("torch")
    pytest.importorskip("skimage")
    import trained

    return trained.build(tmp_path_factory.mktemp("trained"))
