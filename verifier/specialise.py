"""Fix a model to one input shape and fold everything that depends only on shapes.

Exporters compute reshape targets, pad widths and resize scales from `Shape`
ops; onnxruntime-training cannot differentiate several of those patterns
(non-constant Pad, If on shapes) and the lowering passes need static shapes.
Inversion always runs at one known size, so we probe the model once at that
size, record every tensor's shape, and replace each tensor that does not depend
on the *values* of the input by a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verifier.adapters import X
from verifier.errors import UnsupportedModelError, first_line
from verifier.runtime import make_session

#: Ops whose outputs carry only the input's shape, never its values.
SHAPE_OPS = {"Shape", "Size"}


@dataclass(frozen=True)
class StaticModel:
    """A canonical model fixed to one input shape, with the shape of every tensor."""

    model: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]]
    input_shape: tuple[int, int, int, int]


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    names: set[str] = set()
    for attr in node.attribute:
        for graph in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for inner in graph.node:
                names.update(inner.input)
                names.update(_subgraph_inputs(inner))
    return names


def value_dependent(graph: onnx.GraphProto, source: str = X) -> set[str]:
    """Names of the tensors whose values change with the values of `source`."""
    dependent = {source}
    for node in graph.node:
        if node.op_type in SHAPE_OPS:
            continue
        if dependent & (set(node.input) | _subgraph_inputs(node)):
            dependent.update(node.output)
    return dependent


def specialise(model: onnx.ModelProto, input_shape: tuple[int, int, int, int]) -> StaticModel:
    """Return `model` fixed to `input_shape`, shape-only subgraphs folded to constants."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    graph = fixed.graph
    for dim, size in zip(graph.input[0].type.tensor_type.shape.dim, input_shape, strict=True):
        dim.Clear()
        dim.dim_value = int(size)
    values = _probe_all(fixed, input_shape)
    dependent = value_dependent(graph)
    initializers = {init.name for init in graph.initializer}
    folded: dict[str, np.ndarray] = {}
    for node in graph.node:
        if not dependent & set(node.output):
            continue
        for name in node.input:
            if name and name not in dependent and name not in initializers and name in values:
                folded[name] = values[name]
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in folded.items())
    _prune(graph)
    shapes = {name: tuple(int(d) for d in value.shape) for name, value in values.items()}
    shapes[X] = tuple(input_shape)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return StaticModel(model=fixed, shapes=shapes, input_shape=tuple(input_shape))


def _probe_all(model: onnx.ModelProto, input_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Run once on zeros and return every intermediate tensor of the main graph."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    existing = {out.name for out in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in existing:
                probe.graph.output.append(helper.ValueInfoProto(name=name))
                existing.add(name)
    session = make_session(probe.SerializeToString())
    names = [out.name for out in session.get_outputs()]
    try:
        results = session.run(names, {X: np.zeros(input_shape, dtype=np.float32)})
    except Exception as exc:  # onnxruntime raises untyped errors
        raise UnsupportedModelError(
            f"model fails on input shape {list(input_shape)}: {first_line(exc)}"
        ) from exc
    return dict(zip(names, results, strict=True))


def _prune(graph: onnx.GraphProto) -> None:
    """Drop nodes that no longer feed the outputs (the folded shape arithmetic)."""
    constant = {init.name for init in graph.initializer}
    needed = {out.name for out in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed.update(name for name in node.input if name not in constant)
            needed.update(_subgraph_inputs(node))
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in graph.node for name in (*node.input, *_subgraph_inputs(node))}
    inits = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
