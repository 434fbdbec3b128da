""".keras archives (Keras 3's native format) -> ONNX, without `keras.saving.load_model`.

A .keras file is a zip of config.json (the architecture) and model.weights.h5.  Loading it with
Keras would deserialise whatever the config names (a Lambda's bytecode, a registered custom class);
here the config goes through the same whitelist rebuild as a model.json (exporters.keras_config).
The weights file keys each layer by its class name in snake case, numbered in layer order
(layers/conv2d, layers/conv2d_1, ...), and its variables by position (vars/0, vars/1, ...), which
is the rebuilt layer's variable order.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from exporters import isolated
from exporters.base import HDF5_ERRORS, ZIP_ERRORS, ExportError, ExportRequest, ExportResult, quiet_framework, require
from exporters.keras_config import KerasGraph, build_model, fill_weights, parse_config, short_weight_name
from exporters.keras_exporter import convert_keras
from verifier.errors import first_line

_CONFIG, _WEIGHTS = "config.json", "model.weights.h5"


def _snake(class_name: str) -> str:
    """'BatchNormalization' -> 'batch_normalization', 'PReLU' -> 'p_re_lu', as Keras names saved objects."""
    words = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()


def weight_keys(graph: KerasGraph) -> dict[str, str]:
    """Layer name -> its group in model.weights.h5 (class name in snake case, numbered from the second)."""
    seen: dict[str, int] = {}
    keys = {}
    for layer in graph.layers:
        base = _snake(layer.class_name)
        keys[layer.name] = f"layers/{base}" + (f"_{seen[base]}" if base in seen else "")
        seen[base] = seen.get(base, 0) + 1
    return keys


def _read_archive(path: Path) -> tuple[dict, bytes]:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(_CONFIG)), archive.read(_WEIGHTS)
    except ZIP_ERRORS as exc:
        raise ExportError(f"cannot read {path} as a .keras archive: {first_line(exc)}") from exc


def _read_vars(data: bytes, groups: list[str]) -> dict[str, list[np.ndarray]]:
    """Group name -> its vars/0, vars/1, ... arrays, for each listed `<layer path>/vars` group the file has."""
    h5py = require("h5py", KerasArchiveExporter.extra)
    try:
        with h5py.File(io.BytesIO(data), "r") as handle:
            found = {name: handle.get(name) for name in groups}
            return {name: [np.asarray(group[str(i)]) for i in range(len(group))]
                    for name, group in found.items() if group is not None}
    except HDF5_ERRORS as exc:
        raise ExportError(f"cannot read the weights of the .keras archive: {first_line(exc)}") from exc


def _weights(data: bytes, model, keys: dict[str, str], source: str) -> dict[str, dict[str, np.ndarray]]:
    """Layer name -> variable name -> array, reading each layer's vars/<i> in the rebuilt layer's order."""
    groups = {layer.name: f"{keys.get(layer.name, '?')}/vars" for layer in model.layers}
    stored = isolated.call(_read_vars, data, sorted(set(groups.values())), what=source)
    weights = {}
    for layer in model.layers:
        arrays = stored.get(groups[layer.name], [])
        if len(arrays) != len(layer.weights):
            raise ExportError(f"{source}: layer '{layer.name}' has {len(arrays)} weight arrays in the file "
                              f"but {len(layer.weights)} in the config")
        if arrays:
            weights[layer.name] = {short_weight_name(v.name): a for v, a in zip(layer.weights, arrays, strict=True)}
    return weights


class KerasArchiveExporter:
    """Keras 3 .keras archives of whitelisted layers."""

    name = "keras"
    extra = "tensorflow"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() == ".keras"

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        keras = require("keras", self.extra)
        config, data = _read_archive(request.source)
        origin = f"{request.source.name} {_CONFIG}"
        graph = parse_config(config, origin)
        with quiet_framework():
            model = build_model(keras, graph, origin)
            fill_weights(model, graph, _weights(data, model, weight_keys(graph), origin), origin)
        return convert_keras(model, graph.channels, request, target, f"Keras config of {origin} ({graph.describe()})")
