"""Quantised models: activation fake-quantisation as a differentiable surrogate.

Rounding has zero gradient almost everywhere, so onnxruntime-training's gradient
through a QuantizeLinear -> DequantizeLinear pair on an activation is zero and the
input gradient of an int8 model silently loses every quantised path.  We replace
each such pair by the same affine map and clipping *without the rounding* (the
straight-through estimator): gradients flow, and outputs differ from the int8
model by at most half a quantisation step per activation.  Quantised weights are
constants and were already folded to float by specialisation.  QOperator-format
kernels (QLinearConv, ConvInteger, ...) fuse quantisation into the op and are
refused with a clear message.
"""

from __future__ import annotations

import numpy as np
import onnx

from verifier.errors import GradientUnavailableError
from verifier.graph.lowering.base import LoweringContext, attr, axis_view, lowers, node_label

_RANGES = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127),
           np.dtype(np.uint16): (0, 65535), np.dtype(np.int16): (-32768, 32767)}


def _producer(ctx: LoweringContext, name: str) -> onnx.NodeProto | None:
    return next((node for node in ctx.graph.node if name in node.output), None)


@lowers("DequantizeLinear")
def fake_quantize(node: onnx.NodeProto, ctx: LoweringContext) -> bool:
    """DQ(Q(t)) = s * (clip(round(t / s) + z, lo, hi) - z)  ->  the same without round()."""
    quantize = _producer(ctx, node.input[0])
    if quantize is None or quantize.op_type != "QuantizeLinear":
        return False
    t = quantize.input[0]
    rank = len(ctx.shape(t))
    zero_name = quantize.input[2] if len(quantize.input) > 2 and quantize.input[2] else ""
    zero_value = ctx.value(zero_name) if zero_name else np.zeros((), np.uint8)
    scale_value = ctx.value(quantize.input[1])
    if zero_value is None or scale_value is None:
        raise GradientUnavailableError(f"{node_label(quantize)} has run-time quantisation parameters")
    bounds = _RANGES.get(zero_value.dtype)
    if bounds is None:
        raise GradientUnavailableError(f"{node_label(quantize)} quantises to unsupported type {zero_value.dtype}")
    lo, hi = bounds
    # Per-axis scales and zero points are 1-D along the quantiser's `axis`.
    view = axis_view(rank, attr(quantize, "axis", 1)) if scale_value.ndim else []
    scale = ctx.const(scale_value.astype(np.float32).reshape(view), "scale")
    zero = ctx.const(zero_value.astype(np.float32).reshape(view if zero_value.ndim else []), "zero")
    shifted = ctx.emit("Add", [ctx.emit("Div", [t, scale]), zero])
    clipped = ctx.emit("Clip", [shifted, ctx.const(float(lo), "qmin"), ctx.const(float(hi), "qmax")])
    ctx.emit("Mul", [ctx.emit("Sub", [clipped, zero]), scale], out=node.output[0])
    return True


@lowers("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")
def quantized_operator(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Fused integer kernels have no float form to differentiate."""
    raise GradientUnavailableError(
        f"{node_label(node)} is a fused quantised kernel with no gradient; quantise in QDQ format instead")


#: This module's rules, listed in verifier.graph.lowering.RULES.
RULES = (fake_quantize, quantized_operator)
