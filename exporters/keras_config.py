"""Keras model configs (a model.json, a full-model .h5's `model_config`, a SavedModel's object
graph, a .keras archive's config.json) rebuilt from a whitelist of plain layers, never by Keras
deserialisation.

`keras.models.model_from_json` would run whatever the config names: a Lambda layer carries
marshalled Python bytecode, a custom class imports user code.  Here the config is only read as
JSON: each layer must be one of the plain, fully convolutional layer classes below, built from
the few options that change its output (initialisers, regularisers and constraints only matter
in training and are ignored); anything else is refused with a one-line error naming the layer.
Spatial sizes are left free, which such layers allow, so the rebuilt model takes any image size.

One rewrite: a Conv2DTranspose with stride 1, 'same' padding and an odd (dilated) kernel is built
as the Conv2D it equals (kernel flipped spatially, input and output channels swapped when the
weights are filled): TensorFlow has no CPU kernel for dilated transposed convolutions, and the
Conv2D converts to a plain ONNX Conv instead of a transposed one with a computed output shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from exporters.base import ExportError

_CONV = ("filters", "kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias")
#: config class -> the options passed on to the Keras 3 class of the same name.
_LAYERS: dict[str, tuple[str, ...]] = {
    "Conv2D": (*_CONV, "groups"),
    "Conv2DTranspose": (*_CONV, "output_padding"),
    "SeparableConv2D": (*_CONV, "depth_multiplier"),
    "DepthwiseConv2D": ("kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias",
                        "depth_multiplier"),
    "Activation": ("activation",),
    "ReLU": ("max_value", "negative_slope", "threshold"),
    "LeakyReLU": ("negative_slope",),
    "PReLU": ("shared_axes",),
    "BatchNormalization": ("axis", "epsilon", "center", "scale"),
    "UpSampling2D": ("size", "interpolation"),
    "Add": (),
    "Subtract": (),
    "Multiply": (),
    "Average": (),
    "Concatenate": ("axis",),
}
#: Activations Keras resolves by name to its own built-in functions.
_ACTIVATIONS = {"linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "elu", "selu", "softplus", "softsign",
                "swish", "silu", "gelu"}
#: Lambda layers recognised by the sha256 of their marshalled bytecode (the base64 text Keras writes), decoded
#: by hand and never unmarshalled here, with the depth_to_space block size each computes; they are rebuilt
#: from our own code.  Any other Lambda is refused.
_KNOWN_LAMBDAS = {
    # vinayak19th/ARCNN-keras SARCNN_v2 (train_SARCNN.py, Python 3.7): lambda x: tf.nn.depth_to_space(x, 2)
    "2f7486bfbb7067d93f8796f3443d5e63ec32f8d742dffccd983bcbf8574561a8": 2,
}
#: Keras 2 spellings of options Keras 3 renamed.
_RENAMED = {"alpha": "negative_slope"}


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the config: its class, its options and the layers it reads."""

    name: str
    class_name: str
    options: Mapping
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class KerasGraph:
    """A single-input, single-output layer graph in topological order."""

    name: str
    layers: tuple[LayerSpec, ...]
    input: str
    output: str
    channels: int

    def flipped(self) -> frozenset[str]:
        """The Conv2DTranspose layers built as the Conv2D they equal."""
        return frozenset(layer.name for layer in self.layers
                         if layer.class_name == "Conv2DTranspose" and _equals_conv(layer.options))

    def describe(self) -> str:
        """Short architecture note for the ONNX metadata: the model's name and its layer counts."""
        counts: dict[str, int] = {}
        for layer in self.layers:
            counts[layer.class_name] = counts.get(layer.class_name, 0) + 1
        return f"{self.name}: " + ", ".join(f"{count} {kind}" for kind, count in counts.items())


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _plain(value):
    """TF 2.2+ object-graph metadata writes tuples as {'class_name': '__tuple__', 'items': [...]}: make them lists."""
    if isinstance(value, dict):
        if value.get("class_name") == "__tuple__" and "items" in value:
            return [_plain(item) for item in value["items"]]
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _equals_conv(options: Mapping) -> bool:
    """Whether a Conv2DTranspose equals a Conv2D with its kernel flipped: stride 1, 'same' padding on an odd
    effective kernel (so the padding is symmetric) and no output padding."""
    kernel = [d * (k - 1) + 1 for d, k in zip(_pair(options.get("dilation_rate", 1)),
                                                _pair(options.get("kernel_size", 1)), strict=True)]
    return (set(_pair(options.get("strides", 1))) == {1} and options.get("padding") == "same"
            and all(k % 2 for k in kernel) and not options.get("output_padding"))


def _history(value) -> list[str]:
    """Layer names in a Keras 3 call's arguments: each input tensor carries its `keras_history`."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [str(value["config"]["keras_history"][0])]
        return [name for item in value.values() for name in _history(item)]
    if isinstance(value, list):
        return [name for item in value for name in _history(item)]
    return []


def _inbound(entry: dict, source: str) -> tuple[str, ...]:
    """Names of the layers a functional layer reads: one call, no keyword arguments that matter.

    Keras 2 writes a call as [[name, node, tensor, kwargs], ...], Keras 3 as {"args": [...], "kwargs": {...}}.
    """
    nodes = entry.get("inbound_nodes", [])
    if not nodes:
        return ()
    if len(nodes) != 1:
        raise ExportError(f"{source}: layer '{entry.get('name')}' is shared (called {len(nodes)} times)")
    node = nodes[0]
    if isinstance(node, dict):
        if any(value not in (None, False) for value in (node.get("kwargs") or {}).values()):
            raise ExportError(f"{source}: layer '{entry.get('name')}' is called with arguments {node['kwargs']}")
        return tuple(_history(node.get("args", [])))
    names = []
    for item in node if isinstance(node, list) else [node]:
        if not (isinstance(item, list) and len(item) >= 3 and item[1:3] == [0, 0] and not (item[3:] and item[3])):
            raise ExportError(f"{source}: layer '{entry.get('name')}' has an unsupported input {item!r}")
        names.append(str(item[0]))
    return tuple(names)


def _spec(entry: dict, inputs: tuple[str, ...], source: str) -> LayerSpec:
    config = entry.get("config") or {}
    if entry.get("registered_name"):  # a Keras 3 custom class, whatever its class_name says
        raise ExportError(f"{source}: layer '{config.get('name')}' is a custom {entry['registered_name']}, "
                          "which verifier does not rebuild (it may run code)")
    name = str(config.get("name", entry.get("name", "?")))
    return LayerSpec(name=name, class_name=str(entry.get("class_name")), options=config, inputs=inputs)


def _single(endpoints: list, what: str, source: str) -> str:
    if endpoints and isinstance(endpoints[0], str):  # Keras 3 writes a single endpoint unwrapped
        endpoints = [endpoints]
    if len(endpoints) != 1:
        raise ExportError(f"{source}: models with {len(endpoints)} {what}s are not supported (one image in, one out)")
    return str(endpoints[0][0])


def _channels(layer: LayerSpec, source: str) -> int:
    shape = layer.options.get("batch_input_shape") or layer.options.get("batch_shape")
    if not shape or len(shape) != 4 or not isinstance(shape[-1], int):
        raise ExportError(f"{source}: input layer '{layer.name}' does not declare an NHWC image shape ({shape})")
    return int(shape[-1])


def parse_config(document: dict, source: str) -> KerasGraph:
    """The layer graph of a `Model`/`Functional` or `Sequential` config, as Keras 2 (`to_json`, a SavedModel's
    metadata) or Keras 3 (.keras) writes it."""
    document = _plain(document)
    kind, config = document.get("class_name"), document.get("config")
    if kind == "Sequential":
        entries = config.get("layers", []) if isinstance(config, dict) else config
        if not isinstance(entries, list) or not entries:
            raise ExportError(f"{source}: empty Sequential config")
        layers, previous = [], None
        if entries[0].get("class_name") != "InputLayer":  # Keras 2.2 keeps the input shape on the first layer
            first_spec = _spec(entries[0], (), source)
            layers.append(LayerSpec("input", "InputLayer", {"batch_input_shape": first_spec.options.get(
                "batch_input_shape")}, ()))
            previous = "input"
        for entry in entries:
            spec = _spec(entry, (previous,) if previous else (), source)
            layers.append(spec)
            previous = spec.name
        start, end, name = layers[0].name, previous, (config.get("name") if isinstance(config, dict) else None)
    elif kind in ("Model", "Functional") and isinstance(config, dict):
        layers = [_spec(entry, _inbound(entry, source), source) for entry in config.get("layers", [])]
        start = _single(config.get("input_layers", []), "input", source)
        end = _single(config.get("output_layers", []), "output", source)
        name = config.get("name")
    else:
        raise ExportError(f"{source}: not a Keras model config (class_name {kind!r})")
    first = next((layer for layer in layers if layer.name == start and layer.class_name == "InputLayer"), None)
    if first is None:
        raise ExportError(f"{source}: the model input '{start}' is not an InputLayer")
    return KerasGraph(name=str(name or "model"), layers=tuple(layers), input=start, output=str(end),
                      channels=_channels(first, source))


def _options(layer: LayerSpec, source: str) -> dict:
    """The whitelisted options of a layer, in Keras 3 spelling; refuses values that would change the layout."""
    if layer.options.get("data_format", "channels_last") != "channels_last":
        raise ExportError(f"{source}: layer '{layer.name}' is channels_first; only NHWC (channels_last) is supported")
    renamed = {_RENAMED.get(key, key): value for key, value in layer.options.items()}
    options = {key: renamed[key] for key in _LAYERS[layer.class_name] if key in renamed}
    activation = options.get("activation")
    if activation is not None and activation not in _ACTIVATIONS:
        raise ExportError(f"{source}: layer '{layer.name}' uses activation {activation!r}, which is not a "
                          f"built-in one verifier rebuilds ({', '.join(sorted(_ACTIVATIONS))})")
    if isinstance(options.get("axis"), list) and len(options["axis"]) == 1:
        options["axis"] = options["axis"][0]  # Keras 2.4+ writes BatchNormalization's axis as a list
    return options


def _known_lambda(layer: LayerSpec) -> int | None:
    """The depth_to_space block size of a Lambda whose bytecode is in _KNOWN_LAMBDAS, else None."""
    function = layer.options.get("function")
    if layer.options.get("function_type") != "lambda" or layer.options.get("arguments") or not (
            isinstance(function, list) and function and isinstance(function[0], str)):
        return None
    return _KNOWN_LAMBDAS.get(hashlib.sha256(function[0].encode()).hexdigest())


def _layer(keras, layer: LayerSpec, flipped: bool, source: str):
    if layer.class_name == "Lambda":
        import tensorflow as tf

        block = _known_lambda(layer)
        return keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, block), name=layer.name)
    options = _options(layer, source)
    if flipped:
        options.pop("output_padding", None)
        return keras.layers.Conv2D(name=layer.name, **options)
    if layer.class_name == "Conv2DTranspose" and set(_pair(options.get("dilation_rate", 1))) != {1}:
        raise ExportError(f"{source}: layer '{layer.name}' is a dilated Conv2DTranspose that TensorFlow cannot run "
                          "on CPU and that is not a stride-1 'same'-padded odd-sized one verifier rewrites as a Conv2D")
    return getattr(keras.layers, layer.class_name)(name=layer.name, **options)


def build_model(keras, graph: KerasGraph, source: str):
    """A Keras 3 functional model equal to the config's, built only from whitelisted layers."""
    tensors = {}
    for layer in graph.layers:
        if layer.class_name == "InputLayer":
            if layer.name != graph.input:
                raise ExportError(f"{source}: models with several inputs are not supported ('{layer.name}')")
            tensors[layer.name] = keras.Input((None, None, graph.channels), name=layer.name)
            continue
        if layer.class_name not in _LAYERS and not (layer.class_name == "Lambda" and _known_lambda(layer)):
            raise ExportError(f"{source}: layer '{layer.name}' is a {layer.class_name}, which verifier does not "
                              f"rebuild (it may run code); supported: {', '.join(sorted(_LAYERS))}")
        missing = [name for name in layer.inputs if name not in tensors]
        if missing or not layer.inputs:
            raise ExportError(f"{source}: layer '{layer.name}' reads {missing or 'nothing'}, not an earlier layer")
        built = _layer(keras, layer, layer.name in graph.flipped(), source)
        arguments = [tensors[name] for name in layer.inputs]
        tensors[layer.name] = built(arguments if len(arguments) > 1 else arguments[0])
    if graph.output not in tensors:
        raise ExportError(f"{source}: the model output '{graph.output}' is not one of its layers")
    return keras.Model(tensors[graph.input], tensors[graph.output], name=graph.name)


def short_weight_name(name: str) -> str:
    """'model/conv1/kernel:0' -> 'kernel': the part that names the variable inside its layer."""
    return name.rsplit("/", 1)[-1].split(":", 1)[0]


def fill_weights(model, graph: KerasGraph, weights: Mapping[str, Mapping[str, np.ndarray]], source: str) -> None:
    """Set every layer's variables from `weights` (layer name -> variable name -> array).

    Names, not file order, decide what goes where, and every array must fit: the first layer that
    lacks a variable or whose array has another shape is named, with both shapes (as the config
    declares them).
    """
    flipped, used = graph.flipped(), set()
    for layer in model.layers:
        if not layer.weights:
            continue
        stored = weights.get(layer.name, {})
        arrays = []
        for variable in layer.weights:
            key = short_weight_name(variable.name)
            array = stored.get(key)
            if array is None:
                raise ExportError(f"{source}: no '{key}' weights for layer '{layer.name}' (the file has "
                                  f"{sorted(stored) or 'none'})")
            expected = list(variable.shape)
            if layer.name in flipped and key == "kernel":
                expected[2:] = expected[3], expected[2]  # a Conv2DTranspose kernel is (h, w, out, in)
            if list(array.shape) != expected:
                raise ExportError(f"{source}: weights do not fit the architecture: layer '{layer.name}' "
                                  f"{key} is {list(array.shape)} in the file but {expected} in the config")
            if layer.name in flipped and key == "kernel":
                array = array[::-1, ::-1].transpose(0, 1, 3, 2)
            arrays.append(array)
        layer.set_weights(arrays)
        used.add(layer.name)
    unused = [name for name, arrays in weights.items() if arrays and name not in used]
    if unused:
        raise ExportError(f"{source}: the file has weights for layers the architecture lacks: {', '.join(unused)}")
