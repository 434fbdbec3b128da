"""Real third-party ONNX files (opsets 9-11, fixed and dynamic sizes) load and differentiate.

Skipped when ../shared/third_party is absent (it is test data, never committed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verifier import load_model

pytestmark = [pytest.mark.slow, pytest.mark.third_party]

THIRD_PARTY = Path(__file__).resolve().parents[4] / "shared" / "third_party"
FILES = {
    "2hg7274_onnx_example/super_resolution.onnx": (1, 3),
    "JH95-ai_onnx_demo/super_resolution.onnx": (1, 3),
    "niazwazir_SUB_PIXEL_CNN/super_resolution.onnx": (1, 3),
    "meetp06_Efficient-Super-Resolution/super_resolution.onnx": (3, 1),
}


@pytest.mark.parametrize(("name", "expected"), FILES.items(), ids=[n.split("/")[0] for n in FILES])
def test_third_party_onnx_gradients(name: str, expected: tuple[int, int]):
    path = THIRD_PARTY / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    model = load_model(path)
    assert (model.io.channels, model.io.scale) == expected
    rng = np.random.default_rng(0)
    x = rng.random((1, model.io.channels, model.io.height or 32, model.io.width or 32), dtype=np.float32)
    y = model.run(x)
    dy = rng.normal(size=y.shape).astype(np.float32)
    grad = model.vjp(x, dy)
    # Per-pixel central differences: a random direction over 50k pixels cancels too much.
    # These are ReLU nets: a step can cross a kink, so one pixel in a few may be off;
    # the median must be tight and no pixel wildly wrong (a layout or sign bug is O(1)).
    eps, errors = 1e-3, []
    for _ in range(16):
        index = tuple(int(rng.integers(0, n)) for n in x.shape)
        step = np.zeros_like(x)
        step[index] = eps
        numeric = float(((model.run(x + step) - model.run(x - step)) * dy).sum(dtype=np.float64)) / (2 * eps)
        errors.append(abs(numeric - float(grad[index])))
    scale = float(np.abs(grad).max())
    assert np.median(errors) < 1e-3 * scale
    assert max(errors) < 5e-2 * scale
