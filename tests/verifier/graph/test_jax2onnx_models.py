"""Flax NNX models converted by jax2onnx 0.17: opset 23, NHWC, SAME convs, ConvTranspose, resize, LayerNorm, GELU.

jax2onnx emits opset 23 and IR 10 with static shapes; verifier converts to opset 21.  Its Conv
nodes carry auto_pad=SAME_UPPER (wrong ORT input gradients unless made explicit); the stride-2
kernel-3 and stride-1 kernel-4 convs below have asymmetric SAME pads, so a missing or wrongly
split rewrite fails the VJP check.

Op survey ("lowered": rewritten by a :mod:`verifier.graph.lowering` rule; the rest is native):
Transpose (NHWC <-> NCHW around each Conv/ConvTranspose), Conv[auto_pad=SAME_UPPER] (lowered to
explicit pads), ConvTranspose with explicit pads (lowered), LayerNorm as ReduceMean, Sub, Mul,
Add, Sqrt, Div (native), Gelu (opset 20, lowered), Relu written as Max (native), Resize on the
NHWC tensor (linear, half_pixel; lowered), Reshape/Transpose pixel shuffle, Slice, Tanh, Add
(native).  The channels-last Resize failed before `verifier.graph.lowering.resample` learnt to resize
the (H, W) axes of NHWC tensors; jax.image.resize must be called with antialias=False, since
jax2onnx 0.17 cannot convert antialiased (downscaling) resizes.
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
from verifier.graph.normalise import default_opset  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.frameworks]


class _Net(nnx.Module):
    """Same-size restorer: SAME convs down by 2, transposed conv up by 2, bilinear down by 2,
    pixel shuffle up by 2 (reshape/transpose), LayerNorm, GELU, residual."""

    def __init__(self, rngs: nnx.Rngs):
        self.c1 = nnx.Conv(3, 16, (3, 3), padding="SAME", rngs=rngs)
        self.down = nnx.Conv(16, 16, (3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
        self.c2 = nnx.Conv(16, 16, (4, 4), padding="SAME", rngs=rngs)
        self.norm = nnx.LayerNorm(16, rngs=rngs)
        self.up = nnx.ConvTranspose(16, 16, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)
        self.c3 = nnx.Conv(16, 12, (3, 3), padding="SAME", rngs=rngs)

    def __call__(self, x):
        y = nnx.gelu(self.norm(self.c2(self.down(nnx.relu(self.c1(x))))))
        y = nnx.relu(self.up(y))
        n, h, w, c = y.shape
        y = self.c3(jax.image.resize(y, (n, h // 2, w // 2, c), "bilinear", antialias=False))
        n, h, w, c = y.shape
        y = y.reshape(n, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * 2, w * 2, c // 4)
        return jnp.tanh(y) + x


def test_flax_net(tmp_path: Path):
    net = _Net(nnx.Rngs(0))
    proto = jax2onnx.to_onnx(net, [(1, 16, 16, 3)], input_names=["image"])
    assert default_opset(proto) == 23
    ops = {node.op_type for node in proto.graph.node}
    assert {"Resize", "ConvTranspose", "Conv"} <= ops, ops
    assert any(a.name == "auto_pad" and a.s.startswith(b"SAME") for n in proto.graph.node for a in n.attribute)
    onnx.save(proto, str(tmp_path / "flax.onnx"))
    model = load_model(tmp_path / "flax.onnx")
    assert (model.io.layout, model.io.channels, model.io.scale) == ("NHWC", 3, 1)
    assert default_opset(model.graph) == 21

    rng = np.random.default_rng(0)
    x = rng.random((1, 16, 16, 3), dtype=np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    to_nchw = (0, 3, 1, 2)
    np.testing.assert_allclose(model.run(x.transpose(to_nchw)), np.asarray(net(x)).transpose(to_nchw), atol=1e-4)
    expected = np.asarray(jax.grad(lambda t: jnp.sum(net(t) * dy))(x)).transpose(to_nchw)
    assert rel_error(model.vjp(x.transpose(to_nchw), dy.transpose(to_nchw)), expected) < 1e-4
