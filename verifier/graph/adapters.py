"""Wrap a model so that it takes and returns float32 NCHW images in [0, 1].

The adapters are ONNX nodes (Transpose, Mul/Add, Cast) rather than numpy code so
that gradients flow through them in the same graph and every later stage, from
inversion to comparison, sees one convention whatever the source framework.
"""

from __future__ import annotations

import numpy as np
import onnx
from numpy.typing import DTypeLike
from onnx import TensorProto, helper, numpy_helper

from verifier.errors import UnsupportedModelError
from verifier.graph.io_spec import ImageIO

#: Names of the canonical input and output.
X = "verifier.x"
Y = "verifier.y"
_PREFIX = "verifier.adapt."


def _const(name: str, value: float, dtype: DTypeLike) -> TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype), _PREFIX + name)


def canonicalise(model: onnx.ModelProto, io: ImageIO) -> onnx.ModelProto:
    """Return a copy whose single input is `X` and single output is `Y` (NCHW, [0, 1], float32)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    used = {name for node in graph.node for name in (*node.input, *node.output)}
    clash = sorted(name for name in used if name.startswith("verifier."))
    if clash:
        raise UnsupportedModelError(f"model already uses reserved tensor name {clash[0]!r}")
    (image,) = [v for v in graph.input if v.name == io.input_name]
    in_type = image.type.tensor_type.elem_type
    out_value = next(v for v in graph.output if v.name == io.output_name)
    out_type = out_value.type.tensor_type.elem_type or TensorProto.FLOAT
    lo, hi = io.value_range
    batch = image.type.tensor_type.shape.dim[0]
    head: list[onnx.NodeProto] = []
    tail: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []

    def chain(nodes: list[onnx.NodeProto], src: str, op: str, *extra: str, **attrs) -> str:
        dst = f"{_PREFIX}{len(head) + len(tail)}"
        nodes.append(helper.make_node(op, [src, *extra], [dst], **attrs))
        return dst

    current = X
    if (lo, hi) != (0.0, 1.0):
        inits += [_const("span", hi - lo, np.float32), _const("lo", lo, np.float32)]
        current = chain(head, current, "Mul", _PREFIX + "span")
        current = chain(head, current, "Add", _PREFIX + "lo")
    if io.layout == "NHWC":
        current = chain(head, current, "Transpose", perm=[0, 2, 3, 1])
    if in_type != TensorProto.FLOAT:
        current = chain(head, current, "Cast", to=in_type)
    head.append(helper.make_node("Identity", [current], [io.input_name]))

    current = io.output_name
    if out_type != TensorProto.FLOAT:
        current = chain(tail, current, "Cast", to=TensorProto.FLOAT)
    if io.layout == "NHWC":
        current = chain(tail, current, "Transpose", perm=[0, 3, 1, 2])
    if (lo, hi) != (0.0, 1.0):
        current = chain(tail, current, "Sub", _PREFIX + "lo")
        current = chain(tail, current, "Div", _PREFIX + "span")
    tail.append(helper.make_node("Identity", [current], [Y]))

    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    batch_dim = batch.dim_value if batch.HasField("dim_value") else "N"
    in_shape = [batch_dim, io.channels, io.height or "H", io.width or "W"]
    out_shape = [batch_dim, io.out_channels,
                 io.height * io.scale if io.height else "Ho", io.width * io.scale if io.width else "Wo"]
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(X, TensorProto.FLOAT, in_shape))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(Y, TensorProto.FLOAT, out_shape))
    return out
