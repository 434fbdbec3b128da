"""Scalar objectives around a model, written as ONNX nodes.

An objective is the part of a differentiable program that is not the model:
nodes that turn the optimisation variable into the model's input (e.g. a
degradation), and nodes that turn the model's output into one scalar loss.
Keeping them as ONNX lets onnxruntime-training differentiate model and loss in
one graph, so one session call returns the loss and its gradient.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import onnx
from onnx import TensorProto, helper

#: Reserved tensor names an objective's nodes connect to.
VARIABLE = "x"
MODEL_IN = "model_in"
MODEL_OUT = "model_out"
LOSS = "loss"


@dataclass(frozen=True)
class Objective:
    """Nodes from `VARIABLE` to `MODEL_IN` (before) and from `MODEL_OUT` to `LOSS` (after).

    `inputs` names extra float32 tensors fed at run time (e.g. `dy` for a VJP);
    `initializers` holds constants the nodes use.  An empty `before` feeds the
    variable to the model unchanged.
    """

    name: str
    after: tuple[onnx.NodeProto, ...]
    before: tuple[onnx.NodeProto, ...] = ()
    initializers: tuple[onnx.TensorProto, ...] = ()
    inputs: tuple[str, ...] = field(default=())

    @functools.cached_property
    def digest(self) -> str:
        """Content hash, used to cache built gradient sessions."""
        digest = hashlib.sha256(self.name.encode())
        protos: tuple[onnx.NodeProto | onnx.TensorProto, ...] = (*self.before, *self.after, *self.initializers)
        for proto in protos:
            digest.update(proto.SerializeToString(deterministic=True))
        digest.update(",".join(self.inputs).encode())
        return digest.hexdigest()


def before_graph(nodes: tuple[onnx.NodeProto, ...] | list[onnx.NodeProto],
                 initializers: tuple[onnx.TensorProto, ...] | list[onnx.TensorProto],
                 shape: tuple[int, ...], opset_imports: list[onnx.OperatorSetIdProto],
                 ir_version: int) -> onnx.ModelProto:
    """A standalone model of an objective's `before` nodes: VARIABLE of `shape` -> MODEL_IN."""
    graph = helper.make_graph(list(nodes), "before",
                              [helper.make_tensor_value_info(VARIABLE, TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info(MODEL_IN, TensorProto.FLOAT, None)], list(initializers))
    model = helper.make_model(graph, opset_imports=list(opset_imports))
    model.ir_version = ir_version
    return model


def vjp_objective() -> Objective:
    """loss = sum(dy * f(x)), whose gradient w.r.t. x is the vector-Jacobian product."""
    return Objective(
        name="vjp",
        after=(
            helper.make_node("Mul", [MODEL_OUT, "dy"], ["weighted"]),
            helper.make_node("ReduceSum", ["weighted"], [LOSS], keepdims=0),
        ),
        inputs=("dy",),
    )
