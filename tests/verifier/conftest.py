"""Fixtures shared by the verifier tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import conv_model, save


@pytest.fixture
def conv_onnx(tmp_path: Path) -> Path:
    """A valid 3-channel NCHW conv model on disk."""
    return save(conv_model(), tmp_path / "conv.onnx")

