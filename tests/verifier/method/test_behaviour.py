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
