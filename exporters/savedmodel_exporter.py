"""Keras-written TensorFlow SavedModels -> ONNX, without loading the SavedModel.

Loading one (`tf.saved_model.load`, Keras `load_model`) restores its traced functions and Keras
objects: files written by TF 2.1-2.3 Keras often no longer load in current TensorFlow, and running
a graph from an untrusted source runs whatever ops it holds.  Instead two plain reads:

* the architecture: Keras stored each object's config as JSON in the object graph's metadata
  (inside saved_model.pb, parsed as protobuf); the model's config is rebuilt from whitelisted
  layers (exporters.keras_config) exactly as a model.json is;
* the weights: `tf.train.load_checkpoint` on variables/variables only reads tensors; the object
  graph says which layer each `layer_with_weights-N/<variable>` entry belongs to.

Then the common Keras path: fill by layer name, tf2onnx, equivalence check against the rebuilt
Keras model.  Either the SavedModel folder or its saved_model.pb may be named.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from exporters.base import ExportError, ExportRequest, ExportResult, require
from exporters.keras_config import parse_config, short_weight_name
from exporters.keras_exporter import convert_keras, rebuild
from verifier.errors import first_line

_GRAPH_FILE = "saved_model.pb"
_LAYER_PREFIX = "layer_with_weights-"
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _folder(path: Path) -> Path:
    return path.parent if path.name == _GRAPH_FILE else path


def _keras_metadata(node) -> dict | None:
    """The JSON Keras wrote for one object-graph node, or None for non-Keras objects."""
    if node.WhichOneof("kind") != "user_object" or not node.user_object.identifier.startswith("_tf_keras_"):
        return None
    try:
        return json.loads(node.user_object.metadata) if node.user_object.metadata else None
    except ValueError:
        return None


def _object_graph(folder: Path):
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((folder / _GRAPH_FILE).read_bytes())
    except (OSError, DecodeError) as exc:
        raise ExportError(f"cannot read {folder / _GRAPH_FILE} as a SavedModel: {first_line(exc)}") from exc
    if not saved.meta_graphs or not saved.meta_graphs[0].object_graph_def.nodes:
        raise ExportError(f"{folder}: the SavedModel has no object graph (TF1 SavedModels are not supported)")
    return saved.meta_graphs[0].object_graph_def


def read_savedmodel(tf, folder: Path) -> tuple[dict, dict]:
    """(Keras model config, weights as layer name -> variable name -> array) of a Keras SavedModel."""
    graph = _object_graph(folder)
    root, model = graph.nodes[0], _keras_metadata(graph.nodes[0])
    if model is None or "config" not in model:
        hint = " (TF >= 2.5 writes it to keras_metadata.pb, which is not read yet)" \
            if (folder / "keras_metadata.pb").exists() else ""
        raise ExportError(f"{folder}: no Keras model config in {_GRAPH_FILE}{hint}; "
                          "plain tf.Module SavedModels are not rebuilt")
    try:
        reader = tf.train.load_checkpoint(str(folder / "variables" / "variables"))
    except (tf.errors.OpError, ValueError) as exc:
        raise ExportError(f"cannot read the variables of {folder}: {first_line(exc)}") from exc
    keys = reader.get_variable_to_shape_map()
    weights: dict[str, dict] = {}
    for child in root.children:
        if not child.local_name.startswith(_LAYER_PREFIX):
            continue
        layer = _keras_metadata(graph.nodes[child.node_id]) or {}
        prefix = child.local_name + "/"
        weights[str(layer.get("name", child.local_name))] = {
            short_weight_name(key[len(prefix):-len(_VALUE_SUFFIX)]): reader.get_tensor(key)
            for key in keys if key.startswith(prefix) and key.endswith(_VALUE_SUFFIX)}
    return {"class_name": model.get("class_name"), "config": model["config"]}, weights


class SavedModelExporter:
    """TensorFlow SavedModels written by Keras (folder with saved_model.pb and variables/)."""

    name = "savedmodel"
    extra = "tensorflow"

    def accepts(self, path: Path) -> bool:
        return path.name == _GRAPH_FILE or (path.is_dir() and (path / _GRAPH_FILE).is_file())

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        tf = require("tensorflow", self.extra)
        keras = require("keras", self.extra)
        folder = _folder(request.source)
        config, weights = read_savedmodel(tf, folder)
        origin = f"{folder.name}/{_GRAPH_FILE}"
        graph = parse_config(config, origin)
        model = rebuild(keras, graph, weights, origin, f"{folder.name}/variables")
        # the recorded digest covers the whole folder (graph and variables), whichever of the two was named
        return convert_keras(model, graph.channels, replace(request, source=folder), target,
                             f"Keras config of {origin} ({graph.describe()})")
