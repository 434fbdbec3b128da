"""Explicit padding: SAME auto_pad on Conv/pools, and reflect/edge/wrap Pad as Gather.

tf2onnx and jax2onnx emit Conv with auto_pad=SAME_*, for which ORT 1.19 returns a
*wrong* input gradient without any error; explicit pads fix it.  PadGrad only
handles constant padding, and a Gather with precomputed indices reproduces the
other modes with a differentiable op.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from verifier.errors import UnsupportedModelError
from verifier.graph.lowering.base import LoweringContext, attr, lowers, node_label


def _text(value, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else value


@lowers("Conv", "AveragePool", "MaxPool", "LpPool")
def explicit_pads(node: onnx.NodeProto, ctx: LoweringContext) -> bool:
    """Replace auto_pad by the pads it stands for at this input size."""
    auto_pad = _text(attr(node, "auto_pad"), "NOTSET")
    if auto_pad == "NOTSET":
        return False
    spatial = ctx.shape(node.input[0])[2:]
    kernel = attr(node, "kernel_shape") or ctx.shape(node.input[1])[2:]
    strides = attr(node, "strides") or [1] * len(spatial)
    dilations = attr(node, "dilations") or [1] * len(spatial)
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        total = 0 if auto_pad == "VALID" else max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begin, end = (large, small) if auto_pad == "SAME_LOWER" else (small, large)
        begins.append(begin)
        ends.append(end)
    rewritten = helper.make_node(node.op_type, list(node.input), list(node.output), name=node.name)
    for item in node.attribute:
        if item.name not in ("auto_pad", "pads"):
            rewritten.attribute.append(item)
    rewritten.attribute.append(helper.make_attribute("pads", begins + ends))
    ctx.emitted.append(rewritten)
    return True


def _indices(size: int, before: int, after: int, mode: str) -> np.ndarray:
    positions = np.arange(-before, size + after)
    if mode == "edge":
        return np.clip(positions, 0, size - 1)
    if mode == "wrap":
        return positions % size
    period = 2 * (size - 1) if size > 1 else 1
    folded = np.abs(positions) % period
    return np.where(folded >= size, period - folded, folded)


@lowers("Pad")
def pad(node: onnx.NodeProto, ctx: LoweringContext) -> bool:
    """Constant mode is kept (its pads are constants by now); other modes become Gathers."""
    mode = _text(attr(node, "mode"), "constant")
    widths = ctx.value(node.input[1]) if len(node.input) > 1 else attr(node, "pads")
    if widths is None:
        raise UnsupportedModelError(f"{node_label(node)} has run-time pad widths")
    if mode == "constant":
        return False
    shape = ctx.shape(node.input[0])
    widths = np.asarray(widths).tolist()
    if len(node.input) > 3 and node.input[3]:
        axes_value = ctx.value(node.input[3])
        if axes_value is None:
            raise UnsupportedModelError(f"{node_label(node)} has run-time pad axes")
        axes = axes_value.tolist()
    else:
        axes = list(range(len(shape)))
    count = len(axes)
    x = node.input[0]
    todo = [(axis % len(shape), widths[i], widths[i + count]) for i, axis in enumerate(axes)
            if widths[i] or widths[i + count]]
    if any(b < 0 or e < 0 for _, b, e in todo):
        raise UnsupportedModelError(f"{node_label(node)}: negative {mode} padding")
    if not todo:
        ctx.emit("Identity", [x], out=node.output[0])
        return True
    for index, (axis, before, after) in enumerate(todo):
        where = _indices(shape[axis], before, after, mode)
        last = index == len(todo) - 1
        x = ctx.emit("Gather", [x, ctx.const(where, "pad_index", np.int64)],
                     out=node.output[0] if last else None, axis=axis)
    return True


#: This module's rules, listed in verifier.graph.lowering.RULES.
RULES = (explicit_pads, pad)
