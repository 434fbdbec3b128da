"""A synthetic test scene and PSNR, shared by the tests that check exported models still restore images."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB for images in [0, 1]."""
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def scene(channels: int, size: int) -> np.ndarray:
    """A smooth pattern with one edge, (1, channels, size, size) in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy) + 0.15 * (xx > 0.5)
    return np.repeat(image[None, None], channels, 1).astype(np.float32)
