"""The suspect side: run a fingerprint's recorded procedure on a suspect and decide.

`verify` returns a :class:`Verdict` (score, threshold, p-value, verdict).
`compare` puts two fingerprints side by side without any model: only their
critical images can be compared, so it uses the ``paper`` features and decides
only when the first fingerprint carries a ``paper``-method calibration.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from verifier.calibration import Calibration
from verifier.errors import InputError
from verifier.fingerprint import Fingerprint, evidence, score_evidence
from verifier.inversion import Progress
from verifier.methods import histogram_distance, paper_score
from verifier.model import Model


@dataclass(frozen=True)
class Verdict:
    """The decision on one suspect against one fingerprint."""

    verdict: str  # "derived" or "independent"
    score: float
    threshold: float
    p_value: float
    fpr: float
    method: str
    seconds: float

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def _decide(calibration: Calibration, value: float, method: str, started: float) -> Verdict:
    return Verdict(verdict=calibration.verdict(value), score=value, threshold=calibration.threshold,
                   p_value=calibration.p_value(value), fpr=calibration.fpr, method=method,
                   seconds=round(time.perf_counter() - started, 3))


def verify(fingerprint: Fingerprint, suspect: Model, progress: Progress | None = None) -> Verdict:
    """Score `suspect` with the fingerprint's method and decide at its calibrated false-positive rate."""
    started = time.perf_counter()
    return judge(fingerprint, evidence(fingerprint, suspect, progress), started)


def judge(fingerprint: Fingerprint, suspect_evidence: np.ndarray, started: float) -> Verdict:
    """The verdict on a suspect's :func:`~verifier.fingerprint.evidence` (computed now or read from a cache);
    `started` is the perf_counter time the verification began, for the reported duration."""
    return _decide(fingerprint.calibration, score_evidence(fingerprint, suspect_evidence),
                   fingerprint.settings.method, started)


@dataclass(frozen=True)
class Comparison:
    """Two fingerprints' critical images side by side."""

    histogram_distance: float
    pixel_correlation: float
    verdict: Verdict | None  # None unless the first fingerprint is calibrated for the paper method

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"histogram_distance": self.histogram_distance, "pixel_correlation": self.pixel_correlation,
                "verdict": None if self.verdict is None else self.verdict.to_dict()}


def compare(first: Fingerprint, second: Fingerprint) -> Comparison:
    """Compare the critical images of two fingerprints made with the same recipe, degradation and seeds."""
    a, b = first.settings, second.settings
    if (a.recipe, a.degradation, a.seeds) != (b.recipe, b.degradation, b.seeds):
        raise InputError("the fingerprints were made with different recipes, degradations or seeds")
    if first.critical.shape != second.critical.shape:
        raise InputError(f"critical images differ in shape: {list(first.critical.shape)} vs "
                         f"{list(second.critical.shape)}")
    started = time.perf_counter()
    distance = histogram_distance(first.critical, second.critical)
    correlation = float(np.corrcoef(first.critical.ravel(), second.critical.ravel())[0, 1])
    verdict = None
    if a.method == "paper":
        verdict = _decide(first.calibration, paper_score(first.critical, second.critical), "paper", started)
    return Comparison(histogram_distance=distance, pixel_correlation=correlation, verdict=verdict)
