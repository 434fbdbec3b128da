"""Shared by the tests on ../shared/third_party files: locating and exporting a file, a synthetic
scene, its noisy and downscaled versions, PSNR."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from exporters import ExportRequest, ExportResult, export
from verifier import Model, load_model

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


def photo(channels: int, size: int) -> np.ndarray:
    """A crop of scikit-image's astronaut photograph, (1, channels, size, size) in [0, 1]: real texture for
    blur and JPEG artefacts, which the smooth `scene` hardly shows.  Skips without scikit-image."""
    data = pytest.importorskip("skimage.data")
    color = pytest.importorskip("skimage.color")
    image = data.astronaut()[100:100 + size, 180:180 + size] / 255.0
    planes = image.transpose(2, 0, 1) if channels == 3 else color.rgb2gray(image)[None]
    return planes[None].astype(np.float32)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """A (1, 1, H, W) image in [0, 1] after an in-memory JPEG round trip at that quality (Pillow)."""
    image_module = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image_module.fromarray(np.round(image[0, 0] * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return (np.asarray(image_module.open(buffer), dtype=np.float32) / 255)[None, None]


def export_checked(name: str, tmp_path: Path, **options) -> tuple[ExportResult, Model]:
    """Export a third-party file (`options`: further ExportRequest fields), assert the exporter's own
    equivalence check passed, load the result."""
    out = tmp_path / "model.onnx"
    result = export(ExportRequest(source=third_party(name), output=out, **options))
    assert result.max_rel_error is not None and result.max_rel_error < 1e-4
    return result, load_model(out)


def noisy(clean: np.ndarray, sigma: float) -> np.ndarray:
    """`clean` plus seeded Gaussian noise of std `sigma` (in [0, 1] units)."""
    return (clean + np.random.default_rng(0).normal(0, sigma, clean.shape)).astype(np.float32)


def downscaled(clean: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(scale x scale average-pooled image, its nearest-neighbour upscaling back to full size)."""
    n, c, h, w = clean.shape
    small = clean.reshape(n, c, h // scale, scale, w // scale, scale).mean((3, 5)).astype(np.float32)
    return small, np.repeat(np.repeat(small, scale, 2), scale, 3)
