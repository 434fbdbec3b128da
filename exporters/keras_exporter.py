"""Keras HDF5 files (with or without their architecture) -> ONNX through tf2onnx.

The HDF5 file is read with h5py only (no Keras deserialisation, so no Lambda
bytecode or custom objects run).  The architecture comes from, in this order:
the file's own `model_config` (a full-model save), a JSON file of the same stem
beside it (`model.json` + `model.h5`, as `to_json` + `save_weights` write them;
either file may be named), or, for weights-only files, the layer names and
shapes of an architecture we know (exporters.keras_layouts; ESPCN here).
Configs are rebuilt from whitelisted layers (exporters.keras_config), filled by
layer name and converted with tf2onnx (explicit input signature, as Keras 3
needs).  Models are NHWC, which the recorded metadata says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


def convert_keras(keras_model, channels: int, request: ExportRequest, target: Path, architecture: str) -> ExportResult:
    """tf2onnx-convert a filled Keras model into `target`, check it against Keras on a seeded input, finish.

    Shared by every Keras-based exporter (HDF5, JSON, SavedModel, .keras).
    """
    tf = require("tensorflow", "tensorflow")
    tf2onnx = require("tf2onnx", "tensorflow")
    tf2onnx_optimizer = require("tf2onnx.optimizer", "tensorflow")
    import onnx

    # tf2onnx's reshape optimizer, depending on its node sets' iteration order, now and then drops the final
    # Squeeze of a one-channel NHWC model (a rank-5 output in about one export in ten); the others stay.
    optimizers = {name: step for name, step in tf2onnx_optimizer._get_optimizers().items()
                  if name != "reshape_optimizer"}
    with quiet_framework():
        spec = (tf.TensorSpec((None, None, None, channels), tf.float32, name="image"),)
        proto, _ = tf2onnx.convert.from_keras(keras_model, input_signature=spec, opset=_OPSET, optimizers=optimizers)
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
        found = _espcn_scale(layers)
        if found is None:
            shapes = ", ".join(f"{layer.name}{[list(a.shape) for a in layer.arrays]}" for layer in layers[:4])
            raise ExportError(f"{request.source}: Keras weights of an architecture verifier does not know ({shapes})")
        channels, scale = found
        with quiet_framework():
            model = build_espcn(keras, tf, channels, scale, layers[0].arrays[0].shape[3])
            convs = [layer for layer in model.layers if layer.weights]
            for layer, weights in zip(convs, layers, strict=True):
                layer.set_weights(list(weights.arrays))
        return convert_keras(model, channels, request, target,
                             f"exporters.keras_exporter:build_espcn(channels={channels}, scale={scale})")
