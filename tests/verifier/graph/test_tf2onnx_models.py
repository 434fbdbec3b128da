"""Keras 3 models converted by tf2onnx: NHWC layout, SAME padding, DepthToSpace, ConvTranspose, Resize.

tf2onnx 1.17 emits Conv with auto_pad=SAME_UPPER, for which onnxruntime-training returns a wrong
input gradient unless verifier rewrites it to explicit pads.  The models use stride-2 and
even-kernel convs, and are checked at sizes where SAME pads are asymmetric (stride 2, kernel 3 on
an even size; kernel 4 at stride 1), so both a missing and a wrongly split rewrite fail here.

Op survey (tf2onnx 1.17 from_keras, opset 17, dynamic H/W, the Keras exporter's optimizers).  "lowered": rewritten by
a :mod:`verifier.graph.lowering` rule; "folded": shape-only, made constants by :mod:`verifier.graph.specialise`;
all other ops are differentiated natively.  Layout is found as NHWC from the input's shape.

- every model: Transpose (NHWC <-> NCHW around each Conv), Conv[auto_pad=SAME_UPPER] (lowered to
  explicit pads); Keras BatchNormalization is folded into the Conv by tf2onnx.
- SR net: native Relu, Elu, Neg/Mul/Add (PReLU, as tf2onnx writes it); lowered DepthToSpace.
- DnCNN-like: native Relu, Sub, Add, Pad and Slice (tf2onnx's SAME ConvTranspose); lowered
  ConvTranspose, Resize (tf.image.resize bilinear); folded Shape, Gather, Cast, Concat, Mul, Div,
  Add, Neg, Max, Split, Squeeze, Unsqueeze, Slice (output-size arithmetic).
- ESPCN-like: native Tanh, Reshape; folded Shape, Gather; lowered DepthToSpace.

Nothing failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from checks import directional_fd_error, rel_error

tf = pytest.importorskip("tensorflow")
tf2onnx = pytest.importorskip("tf2onnx")
keras = pytest.importorskip("keras")

import onnx  # noqa: E402

from exporters.keras_exporter import tf2onnx_optimizers  # noqa: E402
from verifier import Model, load_model  # noqa: E402

pytestmark = [pytest.mark.frameworks]

TO_NCHW = (0, 3, 1, 2)


def _sr_net() -> keras.Model:
    """x2 SR: SAME convs (one stride 2, kernel 4), BN, PReLU, ELU, two depth_to_space."""
    layers = keras.layers
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


def _dncnn() -> keras.Model:
    """Same-size denoiser: SAME conv stack with a stride-2 conv, upsampled back by a SAME
    Conv2DTranspose plus a bilinear resize, predicting the noise residual."""
    layers = keras.layers
    image = keras.Input((None, None, 3), batch_size=1)
    y = layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    y = layers.Conv2D(16, 3, strides=2, padding="same")(y)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(16, 4, padding="same", activation="relu")(y)
    resized = layers.Lambda(lambda t: tf.image.resize(t, 2 * tf.shape(t)[1:3], "bilinear"))(y)
    y = layers.Add()([layers.Conv2DTranspose(16, 4, strides=2, padding="same")(y), resized])
    y = layers.Conv2D(3, 3, padding="same")(y)
    return keras.Model(image, layers.Subtract()([image, y]))


def _espcn() -> keras.Model:
    """x3 ESPCN on one channel: tanh SAME convs (one even kernel), depth_to_space."""
    layers = keras.layers
    image = keras.Input((None, None, 1), batch_size=1)
    y = layers.Conv2D(16, 5, padding="same", activation="tanh")(image)
    y = layers.Conv2D(8, 4, padding="same", activation="tanh")(y)
    y = layers.Conv2D(9, 3, padding="same")(y)
    y = layers.Lambda(lambda t: tf.nn.depth_to_space(t, 3))(y)
    return keras.Model(image, y)


# name: (builder, channels, scale, (H, W) sizes to check; the first is used for finite differences)
MODELS: dict[str, tuple[Callable[[], keras.Model], int, int, tuple[tuple[int, int], ...]]] = {
    "sr_net": (_sr_net, 3, 2, ((16, 16), (12, 20))),
    "dncnn": (_dncnn, 3, 1, ((16, 16), (12, 20))),
    "espcn": (_espcn, 1, 3, ((15, 15), (16, 11))),
}


def _convert(net: keras.Model, channels: int, path: Path) -> None:
    """tf2onnx.convert.from_keras with an explicit signature, opset 17 and the optimizers the Keras exporter
    uses (tf2onnx's own reshape optimizer makes a rank-5 ESPCN now and then)."""
    spec = (tf.TensorSpec((1, None, None, channels), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(net, input_signature=spec, opset=17, optimizers=tf2onnx_optimizers())
    same = [n for n in proto.graph.node if any(a.name == "auto_pad" and a.s.startswith(b"SAME") for a in n.attribute)]
    assert same, "tf2onnx no longer emits SAME auto_pad: this test lost its point"
    onnx.save(proto, str(path))


def _check_against_keras(model: Model, net: keras.Model, x: np.ndarray) -> None:
    """run() equals Keras (NHWC -> NCHW), vjp() equals tf.GradientTape of sum(dy * net(x))."""
    expected_y = net(x, training=False).numpy()
    np.testing.assert_allclose(model.run(x.transpose(TO_NCHW)), expected_y.transpose(TO_NCHW), atol=1e-4)
    dy = np.random.default_rng(1).normal(size=expected_y.shape).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(net(xt, training=False) * dy)
    expected = tape.gradient(loss, xt).numpy().transpose(TO_NCHW)
    assert rel_error(model.vjp(x.transpose(TO_NCHW), dy.transpose(TO_NCHW)), expected) < 1e-4


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_model_matches_gradient_tape(tmp_path: Path, name: str):
    builder, channels, scale, sizes = MODELS[name]
    keras.backend.clear_session()  # Keras' global layer counters and graph: this test must not see earlier ones
    keras.utils.set_random_seed(0)
    net = builder()
    _convert(net, channels, tmp_path / f"{name}.onnx")
    model = load_model(tmp_path / f"{name}.onnx")
    assert (model.io.layout, model.io.channels, model.io.scale) == ("NHWC", channels, scale)
    rng = np.random.default_rng(0)
    for height, width in sizes:
        _check_against_keras(model, net, rng.random((1, height, width, channels), dtype=np.float32))
    if name == "espcn":  # smooth (tanh only): a directional finite difference is meaningful
        x = rng.random((1, channels, *sizes[0]), dtype=np.float32)
        assert directional_fd_error(model, x, eps=1e-2) < 1e-3
