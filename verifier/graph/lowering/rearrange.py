"""DepthToSpace and SpaceToDepth as Reshape -> Transpose -> Reshape."""

from __future__ import annotations

import onnx

from verifier.graph.lowering.base import LoweringContext, attr, lowers


@lowers("DepthToSpace")
def depth_to_space(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """DCR splits channels as (block, block, C); CRD as (C, block, block)."""
    n, c, h, w = ctx.shape(node.input[0])
    b = attr(node, "blocksize")
    mode = attr(node, "mode", b"DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "DCR":
        split = ctx.reshape(node.input[0], [n, b, b, c // (b * b), h, w])
        perm = [0, 3, 4, 1, 5, 2]
    else:
        split = ctx.reshape(node.input[0], [n, c // (b * b), b, b, h, w])
        perm = [0, 1, 4, 2, 5, 3]
    moved = ctx.transpose(split, perm)
    ctx.reshape(moved, [n, c // (b * b), h * b, w * b], out=node.output[0])


@lowers("SpaceToDepth")
def space_to_depth(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Output channel index is (row offset, column offset, C), as ONNX defines it."""
    n, c, h, w = ctx.shape(node.input[0])
    b = attr(node, "blocksize")
    split = ctx.reshape(node.input[0], [n, c, h // b, b, w // b, b])
    moved = ctx.transpose(split, [0, 3, 5, 1, 2, 4])
    ctx.reshape(moved, [n, c * b * b, h // b, w // b], out=node.output[0])


#: This module's rules, listed in verifier.graph.lowering.RULES.
RULES = (depth_to_space, space_to_depth)
