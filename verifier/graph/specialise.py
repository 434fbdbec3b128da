"""Fix a model to one input shape and fold everything that depends only on shapes.

Exporters compute reshape targets, pad widths and resize scales from `Shape`
ops; onnxruntime-training cannot differentiate several of those patterns
(non-constant Pad, If on shapes) and the lowering passes need static shapes.
Inversion always runs at one known size, so we probe the model once at that
size, record every tensor's shape, and replace each tensor that does not depend
on the *values* of the input by a constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verifier.errors import UnsupportedModelError, first_line
from verifier.graph.adapters import X
from verifier.graph.runtime import make_session

#: Ops whose outputs carry only the input's shape, never its values.
SHAPE_OPS = {"Shape", "Size"}
#: Input positions an op reads only for their element type (torch's unoptimised dynamo
#: exports cast constants with CastLike(constant, activation), which ORT cannot differentiate).
TYPE_ONLY_INPUTS = {"CastLike": {1}}


@dataclass(frozen=True)
class StaticModel:
    """A canonical model fixed to one input shape, with the shape of every tensor."""

    model: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]]
    input_shape: tuple[int, int, int, int]


def nchw(shape: Sequence[int]) -> tuple[int, int, int, int]:
    """`shape` as an (N, C, H, W) tuple (a ValueError unless it has four entries)."""
    n, c, h, w = shape
    return n, c, h, w


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
        type_only = TYPE_ONLY_INPUTS.get(node.op_type, set())
        read = {name for index, name in enumerate(node.input) if index not in type_only}
        if dependent & (read | _subgraph_inputs(node)):
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
    dependent = value_dependent(graph)
    initializers = {init.name for init in graph.initializer}
    frontier = {name for node in graph.node if dependent & set(node.output)
                for name in node.input if name and name not in dependent and name not in initializers}
    inferred = _inferred_shapes(fixed)
    unknown = {name for node in graph.node for name in node.output if name and name not in inferred}
    values = _probe(fixed, input_shape, frontier | unknown)
    graph.initializer.extend(numpy_helper.from_array(values[name], name) for name in sorted(frontier))
    _prune(graph)
    shapes = {**inferred, **{name: tuple(int(d) for d in value.shape) for name, value in values.items()}}
    shapes[X] = tuple(input_shape)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return StaticModel(model=fixed, shapes=shapes, input_shape=nchw(input_shape))


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Fully static shapes that ONNX shape inference finds (probing the rest costs memory)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is an optimisation here: the probe covers what it misses
        return {}
    shapes = {}
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _probe(model: onnx.ModelProto, input_shape: tuple[int, ...], names: set[str]) -> dict[str, np.ndarray]:
    """Run once on zeros and return the requested intermediate tensors of the main graph."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    del probe.graph.output[:]
    probe.graph.output.extend(helper.ValueInfoProto(name=name) for name in sorted(names))
    if not names:
        return {}
    session = make_session(probe.SerializeToString())
    wanted = [out.name for out in session.get_outputs()]
    try:
        results = session.run(wanted, {X: np.zeros(input_shape, dtype=np.float32)})
    except Exception as exc:  # onnxruntime raises untyped errors
        raise UnsupportedModelError(
            f"model fails on input shape {list(input_shape)}: {first_line(exc)}"
        ) from exc
    return dict(zip(wanted, results, strict=True))


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
