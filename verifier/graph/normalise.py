"""Bring any ONNX model into the range onnxruntime-training 1.19 accepts.

ORT 1.19 runs opsets up to 21 and IR versions up to 10; jax2onnx emits opset 23
and onnx 1.23 writes IR 14.  Very old opsets (< 13) carry op versions whose
gradient builders ORT lacks, so they are lifted to 13.  Half-precision models are
computed in float32: ORT's CPU kernels and gradient builders are float32-first,
and the lowering passes write float32 constants.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper, version_converter

from verifier.errors import UnsupportedModelError, first_line

MIN_OPSET = 13
MAX_OPSET = 21
MAX_IR = 10


def default_opset(model: onnx.ModelProto) -> int:
    """Version of the default ('' / ai.onnx) domain the model imports."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise UnsupportedModelError("model imports no version of the default ONNX opset")


def normalise(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy converted to an opset in [13, 21] and IR <= 10, with shapes inferred."""
    opset = default_opset(model)
    if opset > onnx.defs.onnx_opset_version():
        raise UnsupportedModelError(f"model declares opset {opset}, newer than any this onnx knows "
                                    f"({onnx.defs.onnx_opset_version()})")
    target = min(max(opset, MIN_OPSET), MAX_OPSET)
    if target != opset:
        try:
            model = version_converter.convert_version(model, target)
        except Exception as exc:  # the converter raises bare RuntimeErrors / C++ errors
            raise UnsupportedModelError(
                f"cannot convert model from opset {opset} to {target}: {first_line(exc)}"
            ) from exc
    else:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        model = copy
    model.ir_version = min(max(model.ir_version, 7), MAX_IR)
    _drop_initializer_inputs(model)
    _promote_float16(model.graph)
    try:
        # strict: an inconsistent node (a Conv weight of the wrong rank, found by fuzzing) would otherwise reach
        # onnxruntime, whose kernels assert on it and abort the whole process
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:  # inference errors mean the graph itself is inconsistent
        raise UnsupportedModelError(f"model fails ONNX shape inference: {first_line(exc)}") from exc
    return model


def _drop_initializer_inputs(model: onnx.ModelProto) -> None:
    """IR < 4 lists initializers as graph inputs; at IR >= 7 that makes them overridable."""
    names = {init.name for init in model.graph.initializer}
    keep = [inp for inp in model.graph.input if inp.name not in names]
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)


def _promote_float16(graph: onnx.GraphProto) -> None:
    """Rewrite float16 tensors, casts and declared types as float32 (recursing into subgraphs)."""
    for index, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT16:
            graph.initializer[index].CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT16:
                attr.i = TensorProto.FLOAT
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT16:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32), attr.t.name))
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                _promote_float16(sub)
