"""The calibrated decision: a normal fitted to the null scores, its tail gives threshold and p-value."""

from __future__ import annotations

import pytest
from scipy.stats import norm

from verifier.errors import InputError
from verifier.method.calibration import MIN_STD, Calibration, calibrate


def test_threshold_and_p_value_come_from_the_fitted_normal():
    calibration = calibrate([0.1, 0.2, 0.3], ["a", "b", "c"], fpr=0.05)
    assert calibration.mean == pytest.approx(0.2) and calibration.std == pytest.approx(0.1)
    assert calibration.threshold == pytest.approx(0.2 + norm.isf(0.05) * 0.1)
    assert calibration.p_value(calibration.threshold) == pytest.approx(0.05)
    assert calibration.verdict(calibration.threshold + 1e-6) == "derived"
    assert calibration.verdict(0.25) == "independent"
    assert calibration.p_value(0.5) < calibration.p_value(0.25)


def test_identical_null_scores_keep_a_floor_on_the_spread():
    assert calibrate([0.3, 0.3, 0.3], ["a", "b", "c"]).std == MIN_STD


def test_round_trip_recomputes_the_threshold():
    calibration = calibrate([0.1, 0.4, 0.2, 0.3], list("abcd"))
    data = calibration.to_dict()
    data["threshold"] = -5.0  # a stored threshold is never trusted
    assert Calibration.from_dict(data) == calibration


@pytest.mark.parametrize(("scores", "fpr", "message"), [
    ([0.1, 0.2], 0.01, "at least 3"),
    ([0.1, 0.2, float("nan")], 0.01, "non-finite"),
    ([0.1, 0.2, 0.3], 0.7, "false-positive rate"),
])
def test_bad_calibrations_are_refused(scores: list[float], fpr: float, message: str):
    with pytest.raises(InputError, match=message):
        calibrate(scores, [str(i) for i in range(len(scores))], fpr)
