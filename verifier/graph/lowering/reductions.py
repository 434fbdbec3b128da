"""Reductions and variadic ops: Sum, Mean, ReduceMax/Min, GlobalMaxPool, ReduceSumSquare, Einsum."""

from __future__ import annotations

import math
import re

import numpy as np
import onnx

from verifier.errors import UnsupportedModelError
from verifier.graph.lowering.base import LoweringContext, attr, lowers, node_label


@lowers("Sum", "Mean")
def variadic_sum(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """A chain of Adds (divided by the count for Mean)."""
    inputs = [name for name in node.input if name]
    total = inputs[0]
    for index, name in enumerate(inputs[1:], start=1):
        last = index == len(inputs) - 1 and node.op_type == "Sum"
        total = ctx.emit("Add", [total, name], out=node.output[0] if last else None)
    if node.op_type == "Mean":
        ctx.emit("Div", [total, ctx.const(float(len(inputs)), "count")], out=node.output[0])
    elif len(inputs) == 1:
        ctx.emit("Identity", [total], out=node.output[0])


def _reduce_axes(node: onnx.NodeProto, ctx: LoweringContext, rank: int) -> list[int]:
    axes = attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = ctx.value(node.input[1])
        if value is None:
            raise UnsupportedModelError(f"{node_label(node)} has run-time axes")
        axes = value.tolist()
    if not axes:
        return [] if attr(node, "noop_with_empty_axes", 0) else list(range(rank))
    return sorted(a % rank for a in axes)


def _max_over(ctx: LoweringContext, x: str, axes: list[int], keepdims: bool, out: str) -> None:
    """Move `axes` last, flatten them and take TopK(1), which ORT differentiates."""
    shape = ctx.shape(x)
    kept = [a for a in range(len(shape)) if a not in axes]
    moved = ctx.transpose(x, kept + axes)
    flat = ctx.reshape(moved, [shape[a] for a in kept] + [math.prod(shape[a] for a in axes)])
    top = ctx.fresh("topk")
    ctx.emitted.append(onnx.helper.make_node(
        "TopK", [flat, ctx.const([1], "k", np.int64)], [top, ctx.fresh("topk_index")], axis=-1))
    final = [1 if a in axes else shape[a] for a in range(len(shape))] if keepdims else [shape[a] for a in kept]
    ctx.reshape(top, final, out=out)


@lowers("ReduceMax", "ReduceMin", "GlobalMaxPool")
def reduce_extreme(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """max via TopK; min(x) = -max(-x)."""
    x = node.input[0]
    rank = len(ctx.shape(x))
    if node.op_type == "GlobalMaxPool":
        axes, keepdims = list(range(2, rank)), True
    else:
        axes, keepdims = _reduce_axes(node, ctx, rank), bool(attr(node, "keepdims", 1))
    if not axes:
        ctx.emit("Identity", [x], out=node.output[0])
        return
    if node.op_type == "ReduceMin":
        result = ctx.fresh("max")
        _max_over(ctx, ctx.emit("Neg", [x], shape=ctx.shape(x)), axes, keepdims, result)
        ctx.emit("Neg", [result], out=node.output[0])
    else:
        _max_over(ctx, x, axes, keepdims, node.output[0])


@lowers("ReduceSumSquare")
def reduce_sum_square(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """sum(x * x)."""
    x = node.input[0]
    axes = _reduce_axes(node, ctx, len(ctx.shape(x)))
    ctx.reduce("ReduceSum", ctx.emit("Mul", [x, x]), axes, bool(attr(node, "keepdims", 1)), out=node.output[0])


_EINSUM = re.compile(r"^([a-zA-Z.]*)(?:,([a-zA-Z.]*))?->([a-zA-Z.]*)$")


def _expand_ellipsis(labels: str, rank: int, fill: str) -> str:
    if "..." not in labels:
        return labels
    return labels.replace("...", fill[: rank - (len(labels) - 3)])


@lowers("Einsum")
def einsum(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """One or two operands as Transpose / Reshape / MatMul (batched matrix product)."""
    equation = attr(node, "equation")
    equation = (equation.decode() if isinstance(equation, bytes) else equation).replace(" ", "")
    match = _EINSUM.match(equation)
    if not match or len(node.input) > 2:
        raise UnsupportedModelError(f"{node_label(node)}: unsupported equation '{equation}'")
    fill = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in equation)
    shapes = [ctx.shape(name) for name in node.input]
    operands = [_expand_ellipsis(match.group(i + 1), len(s), fill) for i, s in enumerate(shapes)]
    out_labels = _expand_ellipsis(match.group(3), max(len(s) for s in shapes), fill)
    if any(len(set(labels)) != len(labels) for labels in operands):
        raise UnsupportedModelError(f"{node_label(node)}: repeated index in '{equation}'")
    sizes = {label: dim for labels, s in zip(operands, shapes, strict=True)
             for label, dim in zip(labels, s, strict=True)}
    if len(operands) == 1:
        (labels,) = operands
        summed = [i for i, label in enumerate(labels) if label not in out_labels]
        x = ctx.reduce("ReduceSum", node.input[0], summed, keepdims=False) if summed else node.input[0]
        rest = [label for label in labels if label in out_labels]
        ctx.transpose(x, [rest.index(label) for label in out_labels], out=node.output[0])
        return
    a_labels, b_labels = operands
    if any(label not in out_labels and label not in b_labels for label in a_labels) or any(
        label not in out_labels and label not in a_labels for label in b_labels
    ):
        raise UnsupportedModelError(f"{node_label(node)}: summing a one-sided index in '{equation}'")
    batch = [label for label in out_labels if label in a_labels and label in b_labels]
    contract = [label for label in a_labels if label in b_labels and label not in out_labels]
    left = [label for label in a_labels if label not in b_labels]
    right = [label for label in b_labels if label not in a_labels]
    for label in batch + contract:
        if ctx.shape(node.input[0])[a_labels.index(label)] != ctx.shape(node.input[1])[b_labels.index(label)]:
            raise UnsupportedModelError(f"{node_label(node)}: broadcasting index '{label}' is not supported")

    def product(labels: list[str]) -> int:
        return math.prod(sizes[label] for label in labels)

    a = ctx.transpose(node.input[0], [a_labels.index(label) for label in batch + left + contract])
    a = ctx.reshape(a, [product(batch), product(left), product(contract)])
    b = ctx.transpose(node.input[1], [b_labels.index(label) for label in batch + contract + right])
    b = ctx.reshape(b, [product(batch), product(contract), product(right)])
    joined = batch + left + right
    result = ctx.reshape(ctx.emit("MatMul", [a, b]), [sizes[label] for label in joined])
    ctx.transpose(result, [joined.index(label) for label in out_labels], out=node.output[0])


#: This module's rules, listed in verifier.graph.lowering.RULES.
RULES = (variadic_sum, reduce_extreme, reduce_sum_square, einsum)
