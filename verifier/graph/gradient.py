"""Input gradients through onnxruntime-training's gradient graph builder.

`onnxruntime.training` imports torch, so we use the C++ builder directly
(`GradientGraphBuilder`): given a graph with a scalar loss it appends the
backward nodes and exposes ``<input>_grad``.  This module joins a lowered,
static-shape model with an :class:`~verifier.graph.objective.Objective` into one
graph and turns builder failures into messages naming the op and node.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import TensorProto, helper

from verifier.errors import GradientUnavailableError, UnsupportedModelError, first_line
from verifier.graph.adapters import X, Y
from verifier.graph.objective import LOSS, MODEL_IN, MODEL_OUT, VARIABLE, Objective
from verifier.graph.runtime import Session, make_session, ort
from verifier.graph.specialise import StaticModel
from verifier.native import stderr_silenced

GRAD = VARIABLE + "_grad"
_PREFIX = "model/"
_NOT_REGISTERED = re.compile(r"has not been registered: ?(\w+)(?: for node (\S*))?")
_MAX_BLOCKERS = 64


def _renamed(name: str) -> str:
    if name == X:
        return MODEL_IN
    if name == Y:
        return MODEL_OUT
    return _PREFIX + name if name else name


def compose(static: StaticModel, objective: Objective, variable_shape: tuple[int, ...]) -> onnx.ModelProto:
    """One graph: objective.before -> model (names prefixed) -> objective.after -> LOSS."""
    graph = static.model.graph
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise GradientUnavailableError(f"control flow ({node.op_type} node '{node.name}') cannot be differentiated")
    nodes = list(objective.before) or [helper.make_node("Identity", [VARIABLE], [MODEL_IN])]
    for index, node in enumerate(graph.node):
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [_renamed(n) for n in node.input]
        copy.output[:] = [_renamed(n) for n in node.output]
        copy.name = _PREFIX + (node.name or f"{node.op_type}_{index}")
        nodes.append(copy)
    nodes.extend(objective.after)
    initializers = list(objective.initializers)
    for init in graph.initializer:
        copy = TensorProto()
        copy.CopyFrom(init)
        copy.name = _renamed(init.name)
        initializers.append(copy)
    inputs = [helper.make_tensor_value_info(VARIABLE, TensorProto.FLOAT, list(variable_shape))]
    inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in objective.inputs]
    joined = helper.make_graph(nodes, f"objective_{objective.name}", inputs,
                               [helper.make_tensor_value_info(LOSS, TensorProto.FLOAT, [])], initializers)
    model = helper.make_model(joined, opset_imports=list(static.model.opset_import))
    model.ir_version = static.model.ir_version
    return model


def _builder_error(exc: Exception) -> GradientUnavailableError:
    text = str(exc)
    match = _NOT_REGISTERED.search(text)
    if match:
        op, node = match.group(1), (match.group(2) or "").removeprefix(_PREFIX)
        return GradientUnavailableError(f"onnxruntime-training has no gradient for {op} (node '{node}')")
    # A failed C++ check reads "<location> <condition> was false. <reason>".
    reason = text.rsplit(" was false.", 1)[-1].strip() if " was false." in text else first_line(exc)
    reason = reason.splitlines()[0][:200].replace(_PREFIX, "")
    if "unreachable" in reason:
        reason += " (every path from the image to the output goes through ops with no gradient)"
    return GradientUnavailableError(f"onnxruntime-training cannot build the input gradient: {reason}")


def build_gradient(composed: onnx.ModelProto) -> bytes:
    """Serialized model with outputs LOSS and GRAD (d LOSS / d VARIABLE)."""
    builder_cls = ort().capi._pybind_state.GradientGraphBuilder
    try:
        with stderr_silenced():
            builder = builder_cls(composed.SerializeToString(), {LOSS}, {VARIABLE}, LOSS)
            builder.build()
        return builder.get_model()
    except Exception as exc:  # the builder raises bare RuntimeErrors with C++ context
        raise _builder_error(exc) from exc


def gradient_session(composed: onnx.ModelProto, threads: int | None = None) -> Session:
    """Build the backward graph and load it; missing CPU kernels are reported per op."""
    grad_bytes = build_gradient(composed)
    try:
        return make_session(grad_bytes, threads)
    except UnsupportedModelError as exc:
        raise GradientUnavailableError(str(exc).replace(_PREFIX, "")) from exc


def gradient_blockers(composed: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Every node that stops the input gradient, found by bridging blockers one at a time.

    `shapes` are the static shapes of the model's tensors (unprefixed names).
    """
    model = onnx.ModelProto()
    model.CopyFrom(composed)
    blockers: list[str] = []
    for _ in range(_MAX_BLOCKERS):
        try:
            gradient_session(model)
            return blockers
        except GradientUnavailableError as exc:
            blockers.append(str(exc))
            match = _NOT_REGISTERED.search(str(exc.__cause__))
            if not match or not _bridge(model, match.group(2) or "", shapes):
                return blockers
    return blockers


def _bridge(model: onnx.ModelProto, node_name: str, shapes: dict[str, tuple[int, ...]]) -> bool:
    """Replace a node by a differentiable stand-in (zeros + 0 * sum(input)) of the same output shape.

    The stand-in keeps the rest of the graph connected to the input, so the next
    build attempt reports the next blocker instead of "unreachable".
    """
    graph = model.graph
    for index, node in enumerate(graph.node):
        if node.name != node_name or not node_name:
            continue
        total, gated = f"{node_name}/sum", f"{node_name}/gated"
        zero = helper.make_tensor(f"{node_name}/zero", TensorProto.FLOAT, [], [0.0])
        graph.initializer.append(zero)
        stand_in = [helper.make_node("ReduceSum", [node.input[0]], [total], keepdims=0),
                    helper.make_node("Mul", [total, zero.name], [gated])]
        for out in node.output:
            shape = shapes.get(out.removeprefix(_PREFIX))
            if shape is None:
                return False
            zeros = helper.make_tensor(f"{out}/zeros", TensorProto.FLOAT, shape, np.zeros(shape).ravel())
            graph.initializer.append(zeros)
            stand_in.append(helper.make_node("Add", [zeros.name, gated], [out]))
        nodes = [*graph.node[:index], *stand_in, *graph.node[index + 1:]]
        del graph.node[:]
        graph.node.extend(nodes)
        return True
    return False


def check_finite(name: str, array: np.ndarray) -> np.ndarray:
    """Raise if a model produced NaN or Inf (a broken model must not yield a verdict)."""
    if not np.isfinite(array).all():
        raise UnsupportedModelError(f"model produced non-finite values in {name}")
    return array
