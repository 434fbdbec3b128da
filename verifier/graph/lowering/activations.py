"""Activations without gradient builders, rewritten with Relu, Exp, Log, Clip, Erf, Tanh, Where.

min(x, 0) is written -Relu(-x) so that every piece has an ORT gradient.
"""

from __future__ import annotations

import math

import onnx

from verifier.graph.lowering.base import LoweringContext, attr, lowers


def _neg_part(ctx: LoweringContext, x: str) -> str:
    """min(x, 0) as -Relu(-x)."""
    return ctx.emit("Neg", [ctx.emit("Relu", [ctx.emit("Neg", [x])])])


def _scaled(ctx: LoweringContext, x: str, factor: float, out: str | None = None) -> str:
    return ctx.emit("Mul", [x, ctx.const(factor, "k")], out=out)


def _exp_minus_one(ctx: LoweringContext, x: str, alpha: float, inner: float = 1.0) -> str:
    """alpha * (exp(min(x, 0) * inner) - 1), the negative branch of ELU/SELU/CELU."""
    neg = _neg_part(ctx, x)
    if inner != 1.0:
        neg = _scaled(ctx, neg, inner)
    return _scaled(ctx, ctx.emit("Sub", [ctx.emit("Exp", [neg]), ctx.const(1.0, "one")]), alpha)


def _softplus(ctx: LoweringContext, x: str, out: str | None = None) -> str:
    """log(1 + exp(x)) = relu(x) + log(1 + exp(-|x|)), stable for large |x|."""
    tail = ctx.emit("Exp", [ctx.emit("Neg", [ctx.emit("Abs", [x])])])
    log = ctx.emit("Log", [ctx.emit("Add", [tail, ctx.const(1.0, "one")])])
    return ctx.emit("Add", [ctx.emit("Relu", [x]), log], out=out)


def _hard_sigmoid(ctx: LoweringContext, x: str, alpha: float, beta: float, out: str | None = None) -> str:
    shifted = ctx.emit("Add", [_scaled(ctx, x, alpha), ctx.const(beta, "beta")])
    return ctx.emit("Clip", [shifted, ctx.const(0.0, "lo"), ctx.const(1.0, "hi")], out=out)


@lowers("PRelu")
def prelu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """relu(x) + slope * min(x, 0); Mul broadcasts the slope exactly as PRelu does."""
    x, slope = node.input[0], node.input[1]
    negative = ctx.emit("Mul", [_neg_part(ctx, x), slope])
    ctx.emit("Add", [ctx.emit("Relu", [x]), negative], out=node.output[0])


@lowers("Elu")
def elu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """relu(x) + alpha * (exp(min(x, 0)) - 1)."""
    x = node.input[0]
    tail = _exp_minus_one(ctx, x, attr(node, "alpha", 1.0))
    ctx.emit("Add", [ctx.emit("Relu", [x]), tail], out=node.output[0])


@lowers("Selu")
def selu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """gamma * (relu(x) + alpha * (exp(min(x, 0)) - 1))."""
    x = node.input[0]
    tail = _exp_minus_one(ctx, x, attr(node, "alpha", 1.67326319217681884765625))
    inner = ctx.emit("Add", [ctx.emit("Relu", [x]), tail])
    _scaled(ctx, inner, attr(node, "gamma", 1.05070102214813232421875), out=node.output[0])


@lowers("Celu")
def celu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """relu(x) + alpha * (exp(min(x, 0) / alpha) - 1)."""
    x, alpha = node.input[0], attr(node, "alpha", 1.0)
    tail = _exp_minus_one(ctx, x, alpha, inner=1.0 / alpha)
    ctx.emit("Add", [ctx.emit("Relu", [x]), tail], out=node.output[0])


@lowers("HardSigmoid")
def hard_sigmoid(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """clip(alpha * x + beta, 0, 1)."""
    _hard_sigmoid(ctx, node.input[0], attr(node, "alpha", 0.2), attr(node, "beta", 0.5), out=node.output[0])


@lowers("HardSwish")
def hard_swish(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """x * clip(x / 6 + 1/2, 0, 1)."""
    gate = _hard_sigmoid(ctx, node.input[0], 1.0 / 6.0, 0.5)
    ctx.emit("Mul", [node.input[0], gate], out=node.output[0])


@lowers("Softplus")
def softplus(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """log(1 + exp(x))."""
    _softplus(ctx, node.input[0], out=node.output[0])


@lowers("Softsign")
def softsign(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """x / (1 + |x|)."""
    denominator = ctx.emit("Add", [ctx.emit("Abs", [node.input[0]]), ctx.const(1.0, "one")])
    ctx.emit("Div", [node.input[0], denominator], out=node.output[0])


@lowers("Mish")
def mish(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """x * tanh(softplus(x))."""
    gate = ctx.emit("Tanh", [_softplus(ctx, node.input[0])])
    ctx.emit("Mul", [node.input[0], gate], out=node.output[0])


@lowers("Gelu")
def gelu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Opset-20 Gelu: exact (erf) or tanh approximation."""
    x = node.input[0]
    approximate = attr(node, "approximate", b"none")
    if (approximate.decode() if isinstance(approximate, bytes) else approximate) == "tanh":
        cube = ctx.emit("Mul", [ctx.emit("Mul", [x, x]), x])
        inner = ctx.emit("Add", [x, _scaled(ctx, cube, 0.044715)])
        core = ctx.emit("Tanh", [_scaled(ctx, inner, math.sqrt(2.0 / math.pi))])
    else:
        core = ctx.emit("Erf", [_scaled(ctx, x, 1.0 / math.sqrt(2.0))])
    half = _scaled(ctx, ctx.emit("Add", [core, ctx.const(1.0, "one")]), 0.5)
    ctx.emit("Mul", [x, half], out=node.output[0])


@lowers("ThresholdedRelu")
def thresholded_relu(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """x where x > alpha, else 0."""
    x = node.input[0]
    above = ctx.emit("Greater", [x, ctx.const(attr(node, "alpha", 1.0), "alpha")])
    ctx.emit("Where", [above, x, ctx.const(0.0, "zero")], out=node.output[0])


#: This module's rules, listed in verifier.graph.lowering.RULES.
RULES = (prelu, elu, selu, celu, hard_sigmoid, hard_swish, softplus, softsign, mish, gelu, thresholded_relu)
