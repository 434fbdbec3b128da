"""Flax NNX models converted by jax2onnx 0.17: opset 23, NHWC, SAME conv, LayerNorm, Gelu.

jax2onnx emits opset 23 and IR 10; verifier converts to opset 21.  Ops emitted here: Conv,
Transpose, LayerNorm as ReduceMean/Sub/Mul/Sqrt/Div, Gelu (opset 20, lowered), Reshape (pixel
shuffle written by hand), Relu as Max, Tanh, Add.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from checks import rel_error

jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")
jax2onnx = pytest.importorskip("jax2onnx")

import jax.numpy as jnp  # noqa: E402
import onnx  # noqa: E402

from verifier import load_model  # noqa: E402
from verifier.normalise import default_opset  # noqa: E402


class _Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.c1 = nnx.Conv(3, 16, (3, 3), padding="SAME", rngs=rngs)
        self.c2 = nnx.Conv(16, 16, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)
        self.norm = nnx.LayerNorm(16, rngs=rngs)
        self.c3 = nnx.Conv(16, 12, (3, 3), padding="SAME", rngs=rngs)

    def __call__(self, x):
        y = nnx.gelu(self.norm(self.c2(nnx.relu(self.c1(x)))))
        y = self.c3(y)
        n, h, w, c = y.shape
        y = y.reshape(n, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * 2, w * 2, c // 4)
        return jnp.tanh(y) + x


def test_flax_net(tmp_path: Path):
    net = _Net(nnx.Rngs(0))
    proto = jax2onnx.to_onnx(net, [(1, 16, 16, 3)], input_names=["image"])
    assert default_opset(proto) == 23
    onnx.save(proto, str(tmp_path / "flax.onnx"))
    model = load_model(tmp_path / "flax.onnx")
    assert (model.io.layout, model.io.scale) == ("NHWC", 1)
    assert default_opset(model.graph) == 21

    rng = np.random.default_rng(0)
    x = rng.random((1, 16, 16, 3), dtype=np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    to_nchw = (0, 3, 1, 2)
    np.testing.assert_allclose(model.run(x.transpose(to_nchw)), np.asarray(net(x)).transpose(to_nchw), atol=1e-4)
    expected = np.asarray(jax.grad(lambda t: jnp.sum(net(t) * dy))(x)).transpose(to_nchw)
    assert rel_error(model.vjp(x.transpose(to_nchw), dy.transpose(to_nchw)), expected) < 1e-4
