"""Keras HDF5 weight files -> ONNX through tf2onnx.

The HDF5 file is read with h5py only (no Keras deserialisation, so no Lambda
bytecode or custom objects run); the architecture is recognised from layer
weight shapes, rebuilt from our own Keras definitions, filled layer by layer and
converted with tf2onnx (explicit input signature, as Keras 3 needs).  Models are
NHWC, one-channel ones NCHW (see `_nchw_io`); the recorded metadata says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporters.base import (
    ExportError,
    ExportRequest,
    ExportResult,
    finish_export,
    quiet_framework,
    require,
    version,
)
from verifier.errors import first_line

_SUFFIXES = {".h5", ".hdf5"}
_CHECK_SIZE = 24
_OPSET = 17


@dataclass(frozen=True)
class KerasLayerWeights:
    """One layer's name and its weight arrays, in file order."""

    name: str
    arrays: tuple[np.ndarray, ...]


def read_h5_weights(path: Path) -> list[KerasLayerWeights]:
    """Layers with weights, in the file's layer order (Keras 2 'save_weights' layout)."""
    h5py = require("h5py", "tensorflow")
    try:
        with h5py.File(path, "r") as handle:
            root = handle.get("model_weights", handle)
            layers = []
            for raw in root.attrs.get("layer_names", []):
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in root[name].attrs["weight_names"]]
                if names:
                    layers.append(KerasLayerWeights(name, tuple(np.asarray(root[name][n]) for n in names)))
    except (OSError, KeyError, ValueError) as exc:
        raise ExportError(f"cannot read {path} as Keras HDF5 weights: {first_line(exc)}") from exc
    if not layers:
        raise ExportError(f"{path} holds no Keras layer weights")
    return layers


#: Layer names of the one ESPCN variant whose semantics we know (Nhat-Thanh/ESPCN-TF: tanh, tanh,
#: depth_to_space, clip). Same-shaped ESPCNs of other authors differ (jlfilho: relu, relu, then tanh
#: in [-1, 1]) and must not be mistaken for it.
_ESPCN_LAYERS = ["conv2d", "conv2d_1", "conv2d_2"]


def _espcn_scale(layers: list[KerasLayerWeights]) -> tuple[int, int] | None:
    """(channels, scale) when the layers are ESPCN's three convs: 5x5 -> 3x3 -> 3x3 with C*s*s outputs."""
    kernels = [layer.arrays[0].shape for layer in layers]
    if [layer.name for layer in layers] != _ESPCN_LAYERS or [k[:2] for k in kernels] != [(5, 5), (3, 3), (3, 3)]:
        return None
    channels, out = kernels[0][2], kernels[2][3]
    scale = round((out / channels) ** 0.5)
    return (channels, scale) if scale * scale * channels == out else None


def build_espcn(keras, tf, channels: int, scale: int, width: int):
    """ESPCN in Keras: tanh convs, TF depth_to_space (DCR order, unlike torch's PixelShuffle), clip."""
    image = keras.Input((None, None, channels), name="image")
    y = keras.layers.Conv2D(width, 5, padding="same", activation="tanh")(image)
    y = keras.layers.Conv2D(width // 2, 3, padding="same", activation="tanh")(y)
    y = keras.layers.Conv2D(channels * scale * scale, 3, padding="same")(y)
    y = keras.layers.Lambda(lambda t: tf.clip_by_value(tf.nn.depth_to_space(t, scale), 0.0, 1.0))(y)
    return keras.Model(image, y)


class KerasExporter:
    """Weights-only Keras HDF5 files of recognised architectures."""

    name = "tensorflow"
    extra = "tensorflow"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() in _SUFFIXES

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        tf = require("tensorflow", self.extra)
        tf2onnx = require("tf2onnx", self.extra)
        keras = require("keras", self.extra)
        layers = read_h5_weights(request.source)
        with quiet_framework():
            model, channels, architecture = _rebuild(keras, tf, layers, request.source)
            convs = [layer for layer in model.layers if layer.weights]
            for layer, weights in zip(convs, layers, strict=True):
                layer.set_weights(list(weights.arrays))
            spec = (tf.TensorSpec((None, None, None, channels), tf.float32, name="image"),)
            function = tf.function(lambda t: model(t, training=False))
            proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=_OPSET,
                                                     **_nchw_io(function, spec, channels))
            example = np.random.default_rng(0).random((1, _CHECK_SIZE, _CHECK_SIZE, channels), dtype=np.float32)
            native = model(example, training=False).numpy()
        import onnx

        onnx.save(proto, str(target))
        layout = "NCHW" if channels == 1 else "NHWC"
        if layout == "NCHW":
            example, native = example.transpose(0, 3, 1, 2), native.transpose(0, 3, 1, 2)
        return finish_export(
            target, request, native, example, framework="tensorflow", framework_version=tf.__version__,
            exporter="tf2onnx.convert.from_function", exporter_version=version("tf2onnx"), layout=layout,
            value_range=(0.0, 1.0), architecture=architecture)


def _nchw_io(function, spec, channels: int) -> dict:
    """tf2onnx arguments giving one-channel models NCHW input and output (none for others).

    tf2onnx turns the NHWC/NCHW transposes of one-channel tensors into Reshape/Unsqueeze/Squeeze,
    and its transpose optimiser, which iterates over sets of node objects, sometimes drops the
    output's Squeeze, leaving a 5-D output (2 of 25 conversions of a gray DnCNN in one process;
    the equivalence check refuses them).  With NCHW I/O those transposes cancel: 0 of 170 failed.
    """
    if channels != 1:
        return {}
    (output,) = function.get_concrete_function(*spec).outputs
    return {"inputs_as_nchw": [spec[0].name], "outputs_as_nchw": [output.name]}


def _rebuild(keras, tf, layers: list[KerasLayerWeights], source: Path):
    """(empty Keras model whose weighted layers match `layers` one to one, input channels, 'module:factory(...)')."""
    found = _espcn_scale(layers)
    if found is not None:
        channels, scale = found
        return (build_espcn(keras, tf, channels, scale, layers[0].arrays[0].shape[3]), channels,
                f"exporters.keras_exporter:build_espcn(channels={channels}, scale={scale})")
    from exporters.architectures import keras_nets

    kwargs = keras_nets.dncnn_layout(layers)
    if kwargs is not None:
        arguments = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        return (keras_nets.build_dncnn(**kwargs), kwargs["channels"],
                f"exporters.architectures.keras_nets:build_dncnn({arguments})")
    shapes = ", ".join(f"{layer.name}{[list(a.shape) for a in layer.arrays]}" for layer in layers[:4])
    raise ExportError(f"{source}: Keras weights of an architecture verifier does not know ({shapes})")
