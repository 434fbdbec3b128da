"""Keras HDF5 files (with or without their architecture) -> ONNX through tf2onnx.

The HDF5 file is read with h5py only (no Keras deserialisation, so no Lambda
bytecode or custom objects run).  The architecture comes from, in this order:
the file's own `model_config` (a full-model save), a JSON file of the same stem
beside it (`model.json` + `model.h5`, as `to_json` + `save_weights` write them;
either file may be named), or, for weights-only files, the layer names and
shapes of an architecture we know (exporters.keras_layouts; ESPCN and SRCNN here).
Configs are rebuilt from whitelisted layers (exporters.keras_config), filled by
layer name and converted with tf2onnx (explicit input signature, as Keras 3
needs).  Models are NHWC, which the recorded metadata says.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exporters import isolated
from exporters.base import (
    HDF5_ERRORS,
    ExportError,
    ExportRequest,
    ExportResult,
    finish_export,
    quiet_framework,
    require,
    version,
)
from exporters.keras_config import KerasGraph, build_model, fill_weights, parse_config, short_weight_name
from exporters.keras_layouts import known_config
from verifier.errors import first_line

_SUFFIXES = (".h5", ".hdf5")
_CHECK_SIZE = 24
_OPSET = 17


@dataclass(frozen=True)
class KerasLayerWeights:
    """One layer's name and its weight arrays, in file order, with their variable names ('kernel')."""

    name: str
    arrays: tuple[np.ndarray, ...]
    names: tuple[str, ...]


def read_h5_weights(path: Path) -> list[KerasLayerWeights]:
    """Layers with weights, in the file's layer order (Keras 2 'save_weights' layout)."""
    return isolated.call(_read_h5_weights, path, what=str(path))


def _read_h5_weights(path: Path) -> list[KerasLayerWeights]:
    h5py = require("h5py", "tensorflow")
    try:
        with h5py.File(path, "r") as handle:
            root = handle.get("model_weights", handle)
            layers = []
            for raw in root.attrs.get("layer_names", []):
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in root[name].attrs["weight_names"]]
                if names:
                    layers.append(KerasLayerWeights(name, tuple(np.asarray(root[name][n]) for n in names),
                                                    tuple(short_weight_name(n) for n in names)))
    except HDF5_ERRORS as exc:
        raise ExportError(f"cannot read {path} as Keras HDF5 weights: {first_line(exc)}") from exc
    if not layers:
        raise ExportError(f"{path} holds no Keras layer weights")
    return layers


#: Layer names Keras gives the three convs of Nhat-Thanh's weights-only ESPCN and SRCNN files.  Only their
#: variants are known (ESPCN-TF: tanh, tanh, depth_to_space, clip; SRCNN-TF: YCbCr, valid convs, relu, relu,
#: clip). Same-shaped models of other authors differ (jlfilho's ESPCN: relu, relu, then tanh in [-1, 1]) and
#: must not be mistaken for them: kernel sizes and widths are checked too.
_THREE_CONVS = ["conv2d", "conv2d_1", "conv2d_2"]


@dataclass(frozen=True)
class _KnownModel:
    """A Keras model built for a weights-only file's known layout: conv weights still to be set, in file order."""

    model: Any  # a keras.Model (keras is an optional dependency)
    channels: int
    architecture: str


def _kernels(layers: list[KerasLayerWeights]) -> list[tuple[int, ...]] | None:
    """The (kh, kw, in, out) kernel shapes when the file holds exactly the three convs named as above, each a
    kernel and a bias that fit together and chain (a crafted file that does not is no known layout)."""
    if [layer.name for layer in layers] != _THREE_CONVS:
        return None
    kernels = []
    for layer in layers:
        if len(layer.arrays) != 2 or layer.arrays[0].ndim != 4 or layer.arrays[1].shape != layer.arrays[0].shape[3:]:
            return None
        kernels.append(tuple(layer.arrays[0].shape))
    if any(before[3] != after[2] for before, after in itertools.pairwise(kernels)):
        return None
    return kernels


def _espcn(keras, tf, layers: list[KerasLayerWeights]) -> _KnownModel | None:
    """Nhat-Thanh/ESPCN-TF: 5x5 -> 3x3 -> 3x3 with C*s*s outputs."""
    kernels = _kernels(layers)
    if kernels is None or [k[:2] for k in kernels] != [(5, 5), (3, 3), (3, 3)]:
        return None
    channels, width, out = kernels[0][2], kernels[0][3], kernels[2][3]
    scale = round((out / channels) ** 0.5)
    if scale * scale * channels != out or scale < 2:
        return None
    return _KnownModel(build_espcn(keras, tf, channels, scale, width), channels,
                      f"exporters.keras_exporter:build_espcn(channels={channels}, scale={scale})")


def build_espcn(keras, tf, channels: int, scale: int, width: int):
    """ESPCN in Keras: tanh convs, TF depth_to_space (DCR order, unlike torch's PixelShuffle), clip."""
    image = keras.Input((None, None, channels), name="image")
    y = keras.layers.Conv2D(width, 5, padding="same", activation="tanh")(image)
    y = keras.layers.Conv2D(width // 2, 3, padding="same", activation="tanh")(y)
    y = keras.layers.Conv2D(channels * scale * scale, 3, padding="same")(y)
    y = keras.layers.Lambda(lambda t: tf.clip_by_value(tf.nn.depth_to_space(t, scale), 0.0, 1.0))(y)
    return keras.Model(image, y)


def _srcnn(keras, tf, layers: list[KerasLayerWeights]) -> _KnownModel | None:
    """Nhat-Thanh/SRCNN-TF (SRCNN-915/935/955): 9x9 -> kxk -> 5x5, 3 -> 64 -> 32 -> 3 channels."""
    kernels = _kernels(layers)
    if kernels is None or kernels[0] != (9, 9, 3, 64) or kernels[2] != (5, 5, 32, 3):
        return None
    middle = kernels[1]
    if middle[:2] not in ((1, 1), (3, 3), (5, 5)) or middle[2:] != (64, 32):
        return None
    sizes = (9, middle[0], 5)
    return _KnownModel(build_srcnn(keras, tf, sizes), 3, f"exporters.keras_exporter:build_srcnn(kernels={sizes})")


#: Full-range BT.601 (JPEG) RGB -> YCbCr as Nhat-Thanh's SRCNN-TF converts its inputs (values in [0, 1]), with
#: the inverse for the output; the same conversion as ``exporters.architectures.torch_nets.rgb_to_ycbcr``.
_TO_YCBCR = ((0.299, -0.16874, 0.5), (0.587, -0.33126, -0.41869), (0.114, 0.5, -0.08131))
_FROM_YCBCR = ((1.0, 1.0, 1.0), (0.0, -0.34414, 1.772), (1.402, -0.71414, 0.0))
_CHROMA = (0.0, 128 / 255, 128 / 255)


def build_srcnn(keras, tf, kernels: tuple[int, int, int]):
    """SRCNN in Keras as the authors run it, same-size like ``torch_nets.SRCNN``.

    The authors' three 'valid' convs (relu, relu, clip to [0, 1]) work on YCbCr images (the bicubic-upscaled
    low-resolution image); here RGB goes in and out, and the input is edge-padded by the border the convs
    remove, so the output keeps the input's size and equals theirs inside (and equals the PyTorch SRCNN's).
    """
    border = (sum(kernels) - 3) // 2
    to_ycbcr, from_ycbcr = tf.constant(_TO_YCBCR, tf.float32), tf.constant(_FROM_YCBCR, tf.float32)
    chroma = tf.constant(_CHROMA, tf.float32)
    low, high = tf.constant((16 / 255,) * 3, tf.float32), tf.constant((235 / 255, 240 / 255, 240 / 255), tf.float32)

    def edge_pad(t):
        t = tf.concat([tf.tile(t[:, :1], [1, border, 1, 1]), t, tf.tile(t[:, -1:], [1, border, 1, 1])], 1)
        return tf.concat([tf.tile(t[:, :, :1], [1, 1, border, 1]), t, tf.tile(t[:, :, -1:], [1, 1, border, 1])], 2)

    image = keras.Input((None, None, 3), name="image")
    y = keras.layers.Lambda(lambda t: edge_pad(tf.clip_by_value(tf.tensordot(t, to_ycbcr, 1) + chroma, low, high)))(
        image)
    y = keras.layers.Conv2D(64, kernels[0], padding="valid", activation="relu")(y)
    y = keras.layers.Conv2D(32, kernels[1], padding="valid", activation="relu")(y)
    y = keras.layers.Conv2D(3, kernels[2], padding="valid")(y)
    y = keras.layers.Lambda(
        lambda t: tf.clip_by_value(tf.tensordot(tf.clip_by_value(t, 0.0, 1.0) - chroma, from_ycbcr, 1), 0.0, 1.0))(y)
    return keras.Model(image, y)


#: The weights-only layouts we know, tried in order.
_KNOWN = (_espcn, _srcnn)


def _read_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExportError(f"cannot read {path} as a Keras JSON config: {first_line(exc)}") from exc
    if not isinstance(document, dict):
        raise ExportError(f"{path} is not a Keras JSON config")
    return document


def _model_config_text(path: Path) -> str | bytes | None:
    h5py = require("h5py", "tensorflow")
    try:
        with h5py.File(path, "r") as handle:
            return handle.attrs.get("model_config")
    except HDF5_ERRORS as exc:
        raise ExportError(f"cannot read {path} as Keras HDF5 weights: {first_line(exc)}") from exc


def _embedded_config(path: Path) -> dict | None:
    """The `model_config` a full-model HDF5 save carries, or None for a weights-only file."""
    text = isolated.call(_model_config_text, path, what=str(path))
    if text is None:
        return None
    try:
        return json.loads(text.decode() if isinstance(text, bytes) else str(text))
    except ValueError as exc:
        raise ExportError(f"{path}: unreadable model_config: {first_line(exc)}") from exc


def _sibling(path: Path, suffixes: tuple[str, ...]) -> Path | None:
    return next((path.with_suffix(s) for s in suffixes if path.with_suffix(s).is_file()), None)


def find_config(source: Path) -> tuple[Path, dict | None, str]:
    """(weights file, Keras config or None, where the config came from) for a .h5/.hdf5 or .json source."""
    if source.suffix.lower() == ".json":
        weights = _sibling(source, _SUFFIXES)
        if weights is None:
            raise ExportError(f"{source}: no weights beside it ({', '.join(source.stem + s for s in _SUFFIXES)})")
        return weights, _read_json(source), source.name
    embedded = _embedded_config(source)
    if embedded is not None:
        return source, embedded, f"{source.name} model_config"
    described = _sibling(source, (".json",))
    return source, (_read_json(described) if described else None), (described.name if described else "")


def tf2onnx_optimizers() -> dict:
    """tf2onnx's graph optimizers without its reshape optimizer, for every conversion of a dynamic-size graph.

    That optimizer, depending on the iteration order of its node sets (object ids, so it changes with whatever
    ran before in the process), now and then drops the final Squeeze of a one-channel NHWC model: a rank-5
    output in about one conversion in ten (measured 3/30, tf2onnx 1.17). The other optimizers stay.
    """
    tf2onnx_optimizer = require("tf2onnx.optimizer", "tensorflow")
    return {name: step for name, step in tf2onnx_optimizer._get_optimizers().items() if name != "reshape_optimizer"}


def convert_keras(keras_model, channels: int, request: ExportRequest, target: Path, architecture: str) -> ExportResult:
    """tf2onnx-convert a filled Keras model into `target`, check it against Keras on a seeded input, finish.

    Shared by every Keras-based exporter (HDF5, JSON, SavedModel, .keras).
    """
    tf = require("tensorflow", "tensorflow")
    tf2onnx = require("tf2onnx", "tensorflow")
    import onnx

    with quiet_framework():
        spec = (tf.TensorSpec((None, None, None, channels), tf.float32, name="image"),)
        proto, _ = tf2onnx.convert.from_keras(keras_model, input_signature=spec, opset=_OPSET,
                                              optimizers=tf2onnx_optimizers())
        height, width = request.input_shape[1:] if request.input_shape else (_CHECK_SIZE, _CHECK_SIZE)
        example = np.random.default_rng(0).random((1, height, width, channels), dtype=np.float32)
        native = keras_model(example, training=False).numpy()
    onnx.save(proto, str(target))
    return finish_export(target, request, native, example, framework="tensorflow", framework_version=tf.__version__,
                         exporter="tf2onnx.convert.from_keras", exporter_version=version("tf2onnx"), layout="NHWC",
                         value_range=(0.0, 1.0), architecture=architecture)


def rebuild(keras, graph: KerasGraph, weights: dict, config_source: str, weights_source: str):
    """The config's model, rebuilt from whitelisted layers and filled by layer name."""
    with quiet_framework():
        model = build_model(keras, graph, config_source)
        fill_weights(model, graph, weights, weights_source)
    return model


class KerasExporter:
    """Keras HDF5 files: with their config (embedded or a JSON beside them), or weights of a known architecture."""

    name = "tensorflow"
    extra = "tensorflow"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() in (*_SUFFIXES, ".json")

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        keras = require("keras", self.extra)
        weights_file, config, origin = find_config(request.source)
        layers = read_h5_weights(weights_file)
        architecture = f"Keras config of {origin}"
        if config is None and (known := known_config(request.source, layers, request.arch_kwargs)) is not None:
            config, origin = known
            architecture = origin
        if config is None:
            return self._known_architecture(keras, request, target, layers)
        graph = parse_config(config, origin)
        weights = {layer.name: dict(zip(layer.names, layer.arrays, strict=True)) for layer in layers}
        model = rebuild(keras, graph, weights, origin, weights_file.name)
        return convert_keras(model, graph.channels, request, target, f"{architecture} ({graph.describe()})")

    def _known_architecture(self, keras, request: ExportRequest, target: Path,
                            layers: list[KerasLayerWeights]) -> ExportResult:
        tf = require("tensorflow", self.extra)
        with quiet_framework():
            known = next((found for layout in _KNOWN if (found := layout(keras, tf, layers)) is not None), None)
        if known is None:
            shapes = ", ".join(f"{layer.name}{[list(a.shape) for a in layer.arrays]}" for layer in layers[:4])
            raise ExportError(f"{request.source}: Keras weights of an architecture verifier does not know ({shapes})")
        with quiet_framework():
            convs = [layer for layer in known.model.layers if layer.weights]
            for layer, weights in zip(convs, layers, strict=True):
                layer.set_weights(list(weights.arrays))
        return convert_keras(known.model, known.channels, request, target, known.architecture)
