"""Shared by the tests on ../shared/third_party files: locating a file, a synthetic scene, PSNR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FOLDER = Path(__file__).resolve().parents[3] / "shared" / "third_party"


def third_party(name: str) -> Path:
    """The file's path, or skip the test when the folder or file is absent."""
    path = FOLDER / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB for images in [0, 1]."""
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def scene(channels: int, size: int) -> np.ndarray:
    """A smooth pattern with one edge, (1, channels, size, size) in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy) + 0.15 * (xx > 0.5)
    return np.repeat(image[None, None], channels, 1).astype(np.float32)
