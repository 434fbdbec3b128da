"""The verdict from pieces of evidence: lineage decides derived, behaviour alone at most similar."""

from __future__ import annotations

import pytest

from verifier.method.evidence import Evidence, adjusted_p_value, decide, format_p, share


def _piece(kind: str, significant: bool, p_value: float = 0.5) -> Evidence:
    return Evidence(kind=kind, method=kind, score=2.0 if significant else 0.0, threshold=1.0, p_value=p_value)


@pytest.mark.parametrize(("weights", "behaviour", "expected"), [
    (True, True, ("derived", "weights")),
    (True, False, ("derived", "weights")),
    (False, True, ("similar", "behaviour")),
    (False, False, ("independent", None)),
])
def test_decide(weights: bool, behaviour: bool, expected):
    assert decide([_piece("weights", weights), _piece("behaviour", behaviour)]) == expected


def test_behaviour_alone_is_at_most_similar():
    assert decide([_piece("behaviour", True)]) == ("similar", "behaviour")


def test_bonferroni_share_and_adjusted_p():
    assert share(0.01, 2) == pytest.approx(0.005) and share(0.01, 1) == 0.01
    pieces = [_piece("weights", False, 0.004), _piece("behaviour", False, 0.3)]
    assert adjusted_p_value(pieces) == pytest.approx(0.008)
    assert adjusted_p_value([_piece("behaviour", False, 0.9), _piece("weights", False, 0.8)]) == 1.0


def test_underflowing_p_values_do_not_print_as_zero():
    assert format_p(0.0) == "< 1e-300" and format_p(0.0123) == "0.012"
