"""Keras 3 models converted by tf2onnx: NHWC layout, SAME padding, DepthToSpace, PReLU, ELU.

tf2onnx 1.17 emits Conv with auto_pad=SAME_UPPER, for which onnxruntime-training returns a
wrong input gradient unless verifier rewrites it to explicit pads; the stride-2 even-kernel
conv below makes that visible.  Ops emitted here: Conv (SAME_UPPER), Relu, Neg/Mul/Add
(PReLU), Elu, DepthToSpace, Transpose; BatchNormalization is folded into Conv by tf2onnx.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from checks import rel_error

tf = pytest.importorskip("tensorflow")
tf2onnx = pytest.importorskip("tf2onnx")
keras = pytest.importorskip("keras")

import onnx  # noqa: E402

from verifier import load_model  # noqa: E402


def _sr_net() -> keras.Model:
    layers = keras.layers
    keras.utils.set_random_seed(0)
    image = keras.Input((None, None, 3), batch_size=1)
    y = layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    y = layers.Conv2D(16, 4, strides=2, padding="same")(y)
    y = layers.BatchNormalization()(y)
    y = layers.PReLU(shared_axes=[1, 2])(y)
    y = layers.Conv2D(12, 3, padding="same")(y)
    y = layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(y)
    y = layers.Conv2D(12, 3, padding="same", activation="elu")(y)
    y = layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(y)
    return keras.Model(image, y)


def test_keras_sr_net(tmp_path: Path):
    net = _sr_net()
    spec = (tf.TensorSpec((1, None, None, 3), tf.float32, name="image"),)

    @tf.function(input_signature=spec)
    def forward(t):
        return net(t, training=False)

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=17)
    assert any(a.name == "auto_pad" and a.s.startswith(b"SAME") for n in proto.graph.node for a in n.attribute)
    onnx.save(proto, str(tmp_path / "keras.onnx"))
    model = load_model(tmp_path / "keras.onnx")
    assert (model.io.layout, model.io.channels, model.io.scale) == ("NHWC", 3, 2)

    rng = np.random.default_rng(0)
    x = rng.random((1, 16, 16, 3), dtype=np.float32)
    dy = rng.normal(size=(1, 32, 32, 3)).astype(np.float32)
    to_nchw = (0, 3, 1, 2)
    np.testing.assert_allclose(model.run(x.transpose(to_nchw)), net(x).numpy().transpose(to_nchw), atol=1e-4)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(net(xt, training=False) * dy)
    expected = tape.gradient(loss, xt).numpy().transpose(to_nchw)
    assert rel_error(model.vjp(x.transpose(to_nchw), dy.transpose(to_nchw)), expected) < 1e-4
