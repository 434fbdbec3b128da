"""Degradations as ONNX nodes: each equals its numpy definition, is seeded, and is chosen from the model's I/O."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import convolve

from verifier.errors import InputError
from verifier.graph.io_spec import ImageIO
from verifier.method.degradation import DEFAULT_SIGMA, Degradation, default_degradation, degrade, gaussian_kernel


def _io(scale: int) -> ImageIO:
    return ImageIO("img", "out", "NCHW", 3, 3, scale, (0.0, 1.0), None, None, "shape")


def test_defaults_follow_the_scale():
    assert default_degradation(_io(4)) == Degradation("downsample", scale=4)
    assert default_degradation(_io(1)) == Degradation("noise", sigma=DEFAULT_SIGMA)
    assert default_degradation(_io(1), "blur", 2.0) == Degradation("blur", sigma=2.0)
    assert default_degradation(_io(1), "identity").kind == "identity"
    with pytest.raises(InputError, match="needs the 'downsample'"):
        default_degradation(_io(2), "noise")
    with pytest.raises(InputError, match="enlarges its input"):
        default_degradation(_io(1), "downsample")


@pytest.mark.parametrize("bad", [dict(kind="sharpen"), dict(kind="noise"), dict(kind="downsample", scale=1),
                                 dict(kind="noise", sigma=0.1, scale=2)])
def test_invalid_degradations_are_refused(bad: dict):
    with pytest.raises(InputError):
        Degradation(**bad)


def test_downsample_is_average_pooling():
    x = np.random.default_rng(0).random((2, 3, 8, 12), dtype=np.float32)
    expected = x.reshape(2, 3, 2, 4, 3, 4).mean(axis=(3, 5))
    np.testing.assert_allclose(degrade(Degradation("downsample", scale=4), x), expected, atol=1e-6)
    with pytest.raises(InputError, match="not a multiple"):
        degrade(Degradation("downsample", scale=5), x)


def test_noise_is_seeded_and_has_its_sigma():
    x = np.full((1, 3, 64, 64), 0.5, np.float32)
    first = degrade(Degradation("noise", sigma=0.1, seed=3), x)
    np.testing.assert_array_equal(first, degrade(Degradation("noise", sigma=0.1, seed=3), x))
    assert not np.array_equal(first, degrade(Degradation("noise", sigma=0.1, seed=4), x))
    assert abs(float((first - x).std()) - 0.1) < 0.005


def test_blur_is_a_zero_padded_gaussian_per_channel():
    x = np.random.default_rng(1).random((1, 3, 16, 16), dtype=np.float32)
    kernel = gaussian_kernel(1.2)
    assert kernel.shape == (9, 9) and abs(float(kernel.sum()) - 1) < 1e-6
    expected = np.stack([convolve(channel, kernel, mode="constant") for channel in x[0]])[None]
    np.testing.assert_allclose(degrade(Degradation("blur", sigma=1.2), x), expected, atol=1e-5)
