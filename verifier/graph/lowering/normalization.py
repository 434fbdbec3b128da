"""Normalisation layers in inference form, as element-wise ops and ReduceMean."""

from __future__ import annotations

import numpy as np
import onnx

from verifier.errors import UnsupportedModelError
from verifier.graph.lowering.base import LoweringContext, attr, axis_view, lowers, node_label


def _used(name: str, ctx: LoweringContext) -> bool:
    if not name:
        return False
    return any(name in node.input for node in ctx.graph.node) or any(
        out.name == name for out in ctx.graph.output
    )


def _standardise(ctx: LoweringContext, x: str, axes: list[int], eps: float) -> str:
    """(x - mean) / sqrt(var + eps) over `axes`."""
    mean = ctx.reduce("ReduceMean", x, axes)
    centred = ctx.emit("Sub", [x, mean])
    square = ctx.emit("Mul", [centred, centred])
    var = ctx.reduce("ReduceMean", square, axes)
    std = ctx.emit("Sqrt", [ctx.emit("Add", [var, ctx.const(eps, "eps")])])
    return ctx.emit("Div", [centred, std])


def _affine(ctx: LoweringContext, x: str, scale: str, bias: str, out: str) -> None:
    scaled = ctx.emit("Mul", [x, scale]) if scale else x
    if bias:
        ctx.emit("Add", [scaled, bias], out=out)
    else:
        ctx.emit("Identity", [scaled], out=out)


@lowers("BatchNormalization")
def batch_norm(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Inference BN is a per-channel affine map; fold its statistics into one Mul and Add."""
    if any(_used(name, ctx) for name in node.output[1:]):
        raise UnsupportedModelError(f"{node_label(node)} is in training mode")
    scale, bias, mean, var = (ctx.value(name) for name in node.input[1:5])
    if any(v is None for v in (scale, bias, mean, var)):
        raise UnsupportedModelError(f"{node_label(node)} has non-constant parameters")
    a = scale / np.sqrt(var + attr(node, "epsilon", 1e-5))
    view = axis_view(len(ctx.shape(node.input[0])))
    scaled = ctx.emit("Mul", [node.input[0], ctx.const(a.reshape(view), "bn_scale")])
    ctx.emit("Add", [scaled, ctx.const((bias - mean * a).reshape(view), "bn_shift")], out=node.output[0])


@lowers("InstanceNormalization")
def instance_norm(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Standardise each channel of each image over its spatial axes."""
    rank = len(ctx.shape(node.input[0]))
    y = _standardise(ctx, node.input[0], list(range(2, rank)), attr(node, "epsilon", 1e-5))
    _affine(ctx, y, ctx.along_axis(node.input[1], rank), ctx.along_axis(node.input[2], rank), node.output[0])


@lowers("GroupNormalization")
def group_norm(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Standardise over (channels of a group, spatial); opset 18 has per-group, 21 per-channel affine."""
    shape = ctx.shape(node.input[0])
    groups = attr(node, "num_groups")
    grouped = ctx.reshape(node.input[0], [shape[0], groups, -1])
    y = ctx.reshape(_standardise(ctx, grouped, [2], attr(node, "epsilon", 1e-5)), list(shape))
    scale, bias = ctx.value(node.input[1]), ctx.value(node.input[2])
    if scale is None or bias is None:
        raise UnsupportedModelError(f"{node_label(node)} has non-constant scale or bias")
    if scale.size == groups and groups != shape[1]:
        scale, bias = np.repeat(scale, shape[1] // groups), np.repeat(bias, shape[1] // groups)
    view = axis_view(len(shape))
    _affine(ctx, y, ctx.const(scale.reshape(view), "gn_scale"), ctx.const(bias.reshape(view), "gn_bias"),
            node.output[0])


@lowers("LayerNormalization")
def layer_norm(node: onnx.NodeProto, ctx: LoweringContext) -> bool:
    """Only the single-output form lacks a gradient builder; the 3-output form is kept."""
    if any(_used(name, ctx) for name in node.output[1:]):
        return False
    rank = len(ctx.shape(node.input[0]))
    axis = attr(node, "axis", -1) % rank
    y = _standardise(ctx, node.input[0], list(range(axis, rank)), attr(node, "epsilon", 1e-5))
    bias = node.input[2] if len(node.input) > 2 else ""
    _affine(ctx, y, node.input[1], bias, node.output[0])
    return True


@lowers("Dropout")
def dropout(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Inference dropout is the identity."""
    if len(node.output) > 1 and _used(node.output[1], ctx):
        raise UnsupportedModelError(f"{node_label(node)} uses its mask output")
    ctx.emit("Identity", [node.input[0]], out=node.output[0])


#: This module's rules, listed in verifier.graph.lowering.RULES.
RULES = (batch_norm, instance_norm, group_norm, layer_norm, dropout)
