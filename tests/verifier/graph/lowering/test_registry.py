"""The rule table: every rule a topic module defines is listed once, and two rules for one op are refused."""

from __future__ import annotations

import pytest

from verifier.graph import lowering
from verifier.graph.lowering import base
from verifier.graph.lowering.base import LoweringRule, lowers, rule_table

TOPICS = (lowering.activations, lowering.normalization, lowering.padding, lowering.quantization, lowering.rearrange,
          lowering.reductions, lowering.resample, lowering.structure)


def test_every_defined_rule_is_listed():
    defined = {id(value) for topic in TOPICS for value in vars(topic).values() if isinstance(value, LoweringRule)}
    listed = {id(rule) for rule in lowering.RULES.values()}
    assert defined == listed
    assert {"Elu", "BatchNormalization", "Pad", "DepthToSpace", "Resize", "If"} <= lowering.lowerable_ops()


def test_two_rules_for_one_op_are_refused():
    first = lowers("Elu")(lambda node, ctx: None)
    second = lowers("Selu", "Elu")(lambda node, ctx: None)
    with pytest.raises(ValueError, match="two lowering rules for Elu"):
        rule_table([first, second])


def test_lower_uses_only_the_table_it_is_given():
    from builders import conv_model

    from verifier.graph.specialise import specialise

    static = specialise(conv_model(), (1, 3, 8, 8))
    assert base.lower(static, {}).model.graph.node == static.model.graph.node
