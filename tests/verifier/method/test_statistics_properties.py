"""Property-based tests (hypothesis) of the comparison statistics the verdicts rest on."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from verifier.method.behaviour import partial_correlation, response_score
from verifier.method.calibration import calibrate
from verifier.method.evidence import format_p

_FINITE = st.floats(-10, 10, allow_nan=False, width=32)
_VECTOR = arrays(np.float32, 24, elements=_FINITE)


@settings(max_examples=200, deadline=None)
@given(_VECTOR, _VECTOR, arrays(np.float32, (2, 24), elements=_FINITE))
def test_partial_correlation_is_a_symmetric_correlation(a, b, controls):
    value = partial_correlation(a, b, controls)
    assert -1 - 1e-9 <= value <= 1 + 1e-9
    assert math.isclose(value, partial_correlation(b, a, controls), abs_tol=1e-9)


def _left(vector: np.ndarray, controls: np.ndarray) -> float:
    """Largest entry of what least squares on the controls and a constant leaves of `vector`."""
    design = np.concatenate([np.ones((vector.size, 1)), controls.T.astype(np.float64)], axis=1)
    target = vector.astype(np.float64)
    fitted = design @ np.linalg.lstsq(design, target, rcond=None)[0]
    return float(np.abs(target - fitted).max())


@settings(max_examples=200, deadline=None)
@given(_VECTOR, _VECTOR, arrays(np.float32, (2, 24), elements=_FINITE), st.floats(0.1, 10), st.floats(-5, 5),
       st.floats(-5, 5))
def test_partial_correlation_ignores_what_the_controls_explain(a, b, controls, gain, along, offset):
    """Scaling a, adding a constant or any multiple of a control leaves the score unchanged: what every
    reference model does is explained away."""
    moved = gain * a.astype(np.float64) + along * controls[0].astype(np.float64) + offset
    # away from the cut-off below which what is left counts as rounding error (there the score drops to 0)
    assume(min(_left(a, controls), _left(b, controls)) > 1e-3 * (1 + float(np.abs(moved).max())))
    before = partial_correlation(a, b, controls)
    assert math.isclose(before, partial_correlation(moved, b, controls), abs_tol=1e-6)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float32, (2, 1, 3, 4), elements=_FINITE), arrays(np.float32, (3, 2, 1, 3, 4), elements=_FINITE))
def test_a_copy_scores_at_least_any_other_suspect(owner, references):
    """The owner's own residuals are the highest-scoring suspect: Fisher z is monotone in the correlation."""
    other = np.roll(owner, 1, axis=-1)
    assert response_score(owner, owner, references) >= response_score(owner, other, references) - 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=3, max_size=20), st.floats(1e-4, 0.4), st.floats(-20, 20),
       st.floats(0, 10))
def test_p_value_is_monotone_and_equals_the_fpr_at_the_threshold(null, fpr, score, step):
    calibration = calibrate(null, [f"r{i}" for i in range(len(null))], fpr)
    assert calibration.p_value(score + step) <= calibration.p_value(score) + 1e-12
    assert math.isclose(calibration.p_value(calibration.threshold_at(fpr)), fpr, rel_tol=1e-6)


@given(st.floats(0, 1, allow_nan=False))
def test_a_positive_p_value_never_prints_as_zero(value):
    text = format_p(value)
    assert text.strip() not in ("0", "0.0", "0e+00") or value == 0
    if value > 0:
        assert not text.endswith(" 0") and text != "0"


@settings(max_examples=200, deadline=None)
@given(_VECTOR, _VECTOR, arrays(np.float32, 24, elements=_FINITE), st.floats(-5, 5))
def test_degenerate_controls_and_explained_inputs_score_zero(a, b, control, along):
    """Hypothesis found these giving arbitrary scores up to 1: controls that add no direction (a constant one,
    two equal ones) left a spurious QR column, and a fully explained input left rounding noise to correlate."""
    twice = np.stack([control, control])
    assert math.isclose(partial_correlation(a, b, twice), partial_correlation(a, b, control[None]), abs_tol=1e-6)
    explained = along * control.astype(np.float64) + 1.0
    assert partial_correlation(explained, b, control[None]) == 0.0
