"""Control flow whose condition became a constant after specialisation."""

from __future__ import annotations

import onnx
from onnx import helper

from verifier.errors import UnsupportedModelError
from verifier.graph.lowering.base import LoweringContext, lowers, node_label


@lowers("If")
def inline_if(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Exporters branch on shapes; with shapes fixed the branch taken is known: inline it."""
    condition = ctx.value(node.input[0])
    if condition is None:
        raise UnsupportedModelError(f"{node_label(node)} branches on image values")
    branch_name = "then_branch" if bool(condition.reshape(-1)[0]) else "else_branch"
    branch = next(helper.get_attribute_value(a) for a in node.attribute if a.name == branch_name)
    for init in branch.initializer:
        ctx.graph.initializer.append(init)
        ctx.constants[init.name] = init
    ctx.emitted.extend(branch.node)
    for inner, outer in zip(branch.output, node.output, strict=True):
        ctx.emit("Identity", [inner.name], out=outer)


#: This module's rules, listed in verifier.graph.lowering.RULES.
RULES = (inline_if,)
