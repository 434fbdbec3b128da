"""Model: canonical wrapping (layout, range), forward, VJP, input validation, determinism."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from builders import conv_model
from checks import directional_fd_error

from verifier import model_from_proto
from verifier.errors import GradientUnavailableError, InputError, UnsupportedModelError
from verifier.graph.runtime import make_session


def _raw(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = make_session(model.SerializeToString())
    return session.run(None, {"img": x})[0]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("scale", [1, 2])
def test_canonical_forward_and_vjp(layout: str, scale: int):
    proto = conv_model(layout=layout, scale=scale)
    model = model_from_proto(proto)
    x = np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32)
    raw_in = x.transpose(0, 2, 3, 1) if layout == "NHWC" else x
    raw_out = _raw(proto, raw_in)
    expected = raw_out.transpose(0, 3, 1, 2) if layout == "NHWC" else raw_out
    np.testing.assert_allclose(model.run(x), expected, atol=1e-6)
    assert model.run(x).shape == (2, 3, 8 * scale, 8 * scale)
    assert directional_fd_error(model, x) < 1e-3


def test_value_range_adapter():
    proto = conv_model()
    model = model_from_proto(proto, value_range=(0.0, 255.0))
    x = np.random.default_rng(2).random((1, 3, 8, 8), dtype=np.float32) * np.float32(0.004)
    np.testing.assert_allclose(model.run(x), _raw(proto, x * 255.0) / 255.0, atol=1e-6)
    assert directional_fd_error(model, x, eps=1e-5) < 1e-3  # small x: tanh(conv(255 x)) unsaturated


def test_vjp_is_deterministic():
    model = model_from_proto(conv_model(scale=2))
    x = np.random.default_rng(3).random((1, 3, 8, 8), dtype=np.float32)
    dy = np.random.default_rng(4).random((1, 3, 16, 16), dtype=np.float32)
    assert model.vjp(x, dy).tobytes() == model.vjp(x, dy).tobytes()


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((1, 1, 8, 8), np.float32), "3 channels"),
        (np.zeros((3, 8, 8), np.float32), "NCHW"),
        (np.full((1, 3, 8, 8), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_inputs(x: np.ndarray, message: str):
    with pytest.raises(InputError, match=message):
        model_from_proto(conv_model()).run(x)


def test_wrong_dy_shape():
    model = model_from_proto(conv_model(scale=2))
    with pytest.raises(InputError, match="dy must have shape"):
        model.vjp(np.zeros((1, 3, 8, 8), np.float32), np.zeros((1, 3, 8, 8), np.float32))


def test_fixed_size_model_rejects_other_sizes():
    model = model_from_proto(conv_model(dims=(1, None, 8, 8)))
    with pytest.raises(InputError, match="8x8"):
        model.run(np.zeros((1, 3, 16, 16), np.float32))


def test_non_finite_output_is_an_error():
    model = model_from_proto(conv_model(extra=("Log",)))  # log of tanh < 0 is NaN
    x = np.random.default_rng(5).random((1, 3, 8, 8), dtype=np.float32) - 0.5
    with pytest.raises(UnsupportedModelError, match="non-finite"):
        model.run(x)


def test_op_without_gradient_is_named():
    model = model_from_proto(conv_model(extra=("Atan",)))
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(GradientUnavailableError, match="Atan"):
        model.vjp(x, np.ones((1, 3, 8, 8), np.float32))
    blockers = model_from_proto(conv_model(extra=("Atan", "Sinh"))).gradient_blockers((1, 3, 8, 8))
    assert len(blockers) == 2 and "Atan" in " ".join(blockers) and "Sinh" in " ".join(blockers)
