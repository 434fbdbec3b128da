"""The suspect side: run a fingerprint's recorded procedure on a suspect and decide.

`verify` gathers the evidence a suspect allows (weights when it is a file, behaviour always: a
:class:`~verifier.graph.suspect.Suspect` known only by its outputs, such as an inference endpoint, gets
behaviour alone), and returns a :class:`Verdict` holding every piece with its p-value and which one decided
(see :mod:`verifier.method.evidence`).  `compare` puts two fingerprints side by side without any
model: their weight sketches give lineage evidence, their critical images the ``paper``
features (decided only when the first fingerprint carries a ``paper``-method calibration).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from verifier.errors import InputError
from verifier.graph.suspect import Suspect
from verifier.method import weights
from verifier.method.behaviour import evidence as behaviour_evidence
from verifier.method.behaviour import get_method, histogram_distance
from verifier.method.calibration import Calibration
from verifier.method.evidence import MEANING, Evidence, EvidenceKind, Outcome, adjusted_p_value, decide, share
from verifier.method.fingerprint import Fingerprint, evidence, score_evidence
from verifier.method.inversion import Progress
from verifier.method.weights import WeightSketch


@dataclass(frozen=True)
class Verdict:
    """The decision on one suspect against one fingerprint, with the evidence behind it."""

    verdict: Outcome
    evidence: tuple[Evidence, ...]
    decided_by: EvidenceKind | None  # the kind of evidence that made the verdict (None: independent)
    p_value: float  # the verdict's: the smallest piece's, Bonferroni-adjusted
    fpr: float
    seconds: float

    @property
    def primary(self) -> Evidence:
        """The piece that decided, else the one with the smallest p-value."""
        deciding = [piece for piece in self.evidence if piece.kind == self.decided_by]
        return deciding[0] if deciding else min(self.evidence, key=lambda piece: piece.p_value)

    @property
    def score(self) -> float:
        """The primary evidence's score."""
        return self.primary.score

    @property
    def threshold(self) -> float:
        """The primary evidence's threshold."""
        return self.primary.threshold

    @property
    def method(self) -> str:
        """The primary evidence's method."""
        return self.primary.method

    @property
    def meaning(self) -> str:
        """The verdict in words."""
        return MEANING[self.verdict]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"verdict": self.verdict, "meaning": self.meaning, "decided_by": self.decided_by,
                "p_value": self.p_value, "fpr": self.fpr, "score": self.score, "threshold": self.threshold,
                "method": self.method, "seconds": self.seconds,
                "evidence": [piece.to_dict() for piece in self.evidence]}


def _verdict(pieces: list[Evidence], fpr: float, started: float) -> Verdict:
    outcome, decided_by = decide(pieces)
    return Verdict(verdict=outcome, evidence=tuple(pieces), decided_by=decided_by, p_value=adjusted_p_value(pieces),
                   fpr=fpr, seconds=round(time.perf_counter() - started, 3))


def suspect_sketch(suspect: Suspect) -> WeightSketch | None:
    """The suspect's weight sketch, or None when only its outputs are known."""
    return weights.sketch(suspect.original) if suspect.original is not None else None


def verify(fingerprint: Fingerprint, suspect: Suspect, progress: Progress | None = None) -> Verdict:
    """Gather the evidence `suspect` allows and decide at the fingerprint's calibrated false-positive rate."""
    started = time.perf_counter()
    return judge(fingerprint, evidence(fingerprint, suspect, progress), started, suspect_sketch(suspect))


def judge(fingerprint: Fingerprint, suspect_evidence: np.ndarray, started: float,
          suspect_weights: WeightSketch | None = None) -> Verdict:
    """The verdict on a suspect's behavioural :func:`~verifier.method.fingerprint.evidence` (computed now or read
    from a cache) and, when the suspect is a file, its weight sketch; `started` is the perf_counter time
    the verification began, for the reported duration."""
    pieces = gather(fingerprint.weights, suspect_weights, fingerprint.calibration,
                    score_evidence(fingerprint, suspect_evidence), fingerprint.settings.method)
    return _verdict(pieces, fingerprint.calibration.fpr, started)


def gather(owner_weights: WeightSketch, suspect_weights: WeightSketch | None, calibration: Calibration,
           behaviour_score: float, method: str) -> list[Evidence]:
    """The pieces of evidence a suspect allows, each held to its share of the calibration's FPR: weights when
    both sides have a sketch (the owner has qualifying layers, the suspect is a file), behaviour always."""
    pieces: list[Evidence] = []
    if suspect_weights is not None and len(owner_weights) > 0:
        pieces.append(weights.evidence(owner_weights, suspect_weights, share(calibration.fpr, 2)))
    pieces.append(behaviour_evidence(calibration, behaviour_score, method, share(calibration.fpr, len(pieces) + 1)))
    return pieces


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
    """Compare two fingerprints made with the same recipe, degradation and seeds: weight sketches and critical
    images.  The verdict (None when neither kind of evidence applies) is held to the first one's FPR."""
    a, b = first.settings, second.settings
    if (a.recipe, a.degradation, a.seeds) != (b.recipe, b.degradation, b.seeds):
        raise InputError("the fingerprints were made with different recipes, degradations or seeds")
    if first.critical.shape != second.critical.shape:
        raise InputError(f"critical images differ in shape: {list(first.critical.shape)} vs "
                         f"{list(second.critical.shape)}")
    started = time.perf_counter()
    distance = histogram_distance(first.critical, second.critical)
    correlation = float(np.corrcoef(first.critical.ravel(), second.critical.ravel())[0, 1])
    fpr = first.calibration.fpr
    with_weights = len(first.weights) > 0 and len(second.weights) > 0
    value = get_method(a.method).fingerprints_score(first, second)
    each = share(fpr, with_weights + (value is not None))
    pieces = [weights.evidence(first.weights, second.weights, each)] if with_weights else []
    if value is not None:
        pieces.append(behaviour_evidence(first.calibration, value, a.method, each))
    verdict = _verdict(pieces, fpr, started) if pieces else None
    return Comparison(histogram_distance=distance, pixel_correlation=correlation, verdict=verdict)
