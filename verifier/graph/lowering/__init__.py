"""Lowering passes: rewrite ops that onnxruntime-training cannot differentiate.

ORT 1.19 has no gradient builder (or no CPU gradient kernel) for many ops that
exporters emit.  Each rule here replaces one such node by an equivalent chain of
differentiable ops, using the static shapes of :class:`~verifier.graph.specialise.StaticModel`.
Rules live in small topic modules, each listing its rules in a ``RULES`` tuple; :data:`RULES`
below is the one table of them (two rules for one op type are refused when it is built), and
:func:`lower` applies them until none applies.  Every rule is tested for equal outputs and for
gradients against finite differences.
"""

from verifier.graph.lowering import (
    activations,
    base,
    normalization,
    padding,
    quantization,
    rearrange,
    reductions,
    resample,
    structure,
)
from verifier.graph.lowering.base import LoweringContext, LoweringRule, lowers, rule_table
from verifier.graph.specialise import StaticModel

#: Op type -> the rule that rewrites it.
RULES = rule_table([*activations.RULES, *normalization.RULES, *padding.RULES, *quantization.RULES,
                    *rearrange.RULES, *reductions.RULES, *resample.RULES, *structure.RULES])


def lower(static: StaticModel) -> StaticModel:
    """Every rule of :data:`RULES`, applied until the graph no longer changes."""
    return base.lower(static, RULES)


def lowerable_ops() -> frozenset[str]:
    """Op types that some rule may rewrite."""
    return frozenset(RULES)


__all__ = ["RULES", "LoweringContext", "LoweringRule", "lower", "lowerable_ops", "lowers"]
