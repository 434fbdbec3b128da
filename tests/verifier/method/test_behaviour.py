"""The response method's partial correlation: reference-explained behaviour does not count as similarity."""

from __future__ import annotations

import numpy as np
import pytest

from verifier.method.behaviour import partial_correlation, response_score


def test_shared_task_behaviour_is_explained_away():
    rng = np.random.default_rng(0)
    task = rng.normal(size=(2, 500))  # what every model of the task does, in two strengths
    own, other = rng.normal(size=500), rng.normal(size=500)
    owner = task[0] + 0.3 * task[1] + 0.2 * own
    independent = 1.5 * task[0] - 0.2 * task[1] + 0.2 * other
    derived = 0.9 * task[0] + 0.35 * task[1] + 0.2 * own + 0.02 * other
    references = np.stack([task[0] + 0.01 * rng.normal(size=500), task[1] + 0.01 * rng.normal(size=500)])
    assert np.corrcoef(owner, independent)[0, 1] > 0.8  # plain correlation is fooled
    assert abs(partial_correlation(owner, independent, references)) < 0.15
    assert partial_correlation(owner, derived, references) > 0.9


def test_response_score_is_fisher_z_of_the_mean():
    rng = np.random.default_rng(1)
    owner = rng.normal(size=(2, 1, 4, 4))
    references = rng.normal(size=(3, 2, 1, 4, 4))
    assert response_score(owner, owner, references) == pytest.approx(np.arctanh(0.999999))
    suspect = rng.normal(size=(2, 1, 4, 4))
    expected = np.arctanh(np.mean([partial_correlation(owner[k], suspect[k], references[:, k]) for k in range(2)]))
    assert response_score(owner, suspect, references) == pytest.approx(expected)


def test_evidence_is_held_to_a_null_of_independent_real_models():
    """A measured null of independent real models raises the threshold and is named; every method ships one
    (without it a `similar` would rest on weak references alone), and a missing one is a broken install."""
    from verifier.method import behaviour
    from verifier.method.calibration import Calibration, MeasuredNull, measured_null

    calibration = Calibration(null_scores=(0.1, 0.2, 0.3, 0.15), references=("a", "b", "c", "d"), fpr=0.01)
    backed = behaviour.evidence(calibration, 0.5, "response", 0.005, MeasuredNull.fit([0.0, 4.0, 8.0, 2.0]))
    assert "4 pairs of independent real models" in backed.detail
    assert backed.threshold > calibration.threshold_at(0.005)
    for method in behaviour.METHODS:
        shipped = behaviour.evidence(calibration, 0.5, method, 0.005)
        assert "pairs of independent real models" in shipped.detail
        assert shipped.threshold > calibration.threshold_at(0.005)
    with pytest.raises(FileNotFoundError, match="package is incomplete"):
        measured_null("behaviour-no-such-method", 1.0)
