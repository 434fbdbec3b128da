"""Comparison methods: how similar a suspect is to the owner, as one number (higher = more similar).

Two methods behind one interface (``score(owner, suspect_evidence)``):

- ``response`` (default; needs only the suspect's outputs, so black-box suspects
  work): the suspect restores the owner's probes (the degraded critical images
  and the inversion's seeded starting images).  Its residuals (output minus the
  image the probe was made from) are compared with the owner's by partial
  correlation given the residuals of independent reference models: both are
  regressed on the references' residuals (and a constant) and only what the
  references do not explain is correlated.  What every model of the task does
  (remove noise, sharpen edges, more or less strongly) is explained away, so
  independent models score near zero even when their architecture matches.
  Score: Fisher z of the mean partial correlation over probes.
- ``paper`` (the baseline after Quan et al.): the suspect's own critical images
  from the same seeds are compared with the owner's through colour and LGP
  histograms (chi-square).  Score: minus the log of the mean distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from verifier.calibration import Calibration, MeasuredNull, measured_null
from verifier.degradation import Degradation, degrade
from verifier.evidence import Evidence
from verifier.features import chi_square, colour_histogram, lgp_histogram
from verifier.suspect import Suspect

MethodName = Literal["response", "paper"]
METHODS: tuple[MethodName, ...] = ("response", "paper")
_MAX_CORRELATION = 0.999999
#: Floor on the spread (in null standard deviations) of the scores real independent models reach.
MIN_STRONG_NULL_STD = 1.0


@dataclass(frozen=True)
class Probes:
    """Images a suspect is asked to restore: `inputs` = D(`targets`)."""

    targets: np.ndarray  # (P, C, H, W)
    inputs: np.ndarray  # (P, C, H / scale, W / scale)


def make_probes(critical: np.ndarray, starts: np.ndarray, degradation: Degradation) -> Probes:
    """Probes from the critical images and the starting images of their inversion."""
    targets = np.concatenate([critical, starts]).astype(np.float32)
    return Probes(targets=targets, inputs=degrade(degradation, targets))


def residuals(model: Suspect, probes: Probes) -> np.ndarray:
    """model(input) - target for every probe (one image per call: some models fix the batch to 1; a model with
    a fixed image size gets each probe on its own canvas, see :func:`~verifier.suspect.restore_on_canvas`)."""
    return np.stack([model.restore(image[None])[0] for image in probes.inputs]) - probes.targets


def partial_correlation(a: np.ndarray, b: np.ndarray, controls: np.ndarray) -> float:
    """Correlation of `a` and `b` after regressing both on `controls` (n, ...) and a constant."""
    design = np.concatenate([np.ones((a.size, 1)), controls.reshape(len(controls), -1).T.astype(np.float64)], axis=1)
    basis, _ = np.linalg.qr(design)
    a = a.ravel().astype(np.float64)
    b = b.ravel().astype(np.float64)
    a = a - basis @ (basis.T @ a)
    b = b - basis @ (basis.T @ b)
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denominator if denominator > 0 else 0.0


def response_score(owner: np.ndarray, suspect: np.ndarray, references: np.ndarray) -> float:
    """Fisher z of the mean over probes of the partial correlation of owner and suspect residuals.

    `owner`, `suspect`: (P, C, H, W) residuals; `references`: (n, P, C, H, W) residuals of
    independent models, the controls.
    """
    correlations = [partial_correlation(owner[k], suspect[k], references[:, k]) for k in range(len(owner))]
    return float(np.arctanh(np.clip(np.mean(correlations), -_MAX_CORRELATION, _MAX_CORRELATION)))


def histogram_distance(owner: np.ndarray, suspect: np.ndarray) -> float:
    """Mean over critical-image pairs of chi-square(colour) + chi-square(LGP)."""
    return float(np.mean([chi_square(colour_histogram(o), colour_histogram(s)) + chi_square(lgp_histogram(o),
                                                                                          lgp_histogram(s))
                          for o, s in zip(owner, suspect, strict=True)]))


def paper_score(owner: np.ndarray, suspect: np.ndarray) -> float:
    """-log(histogram distance), so that higher means more similar like the response score."""
    return -math.log(max(histogram_distance(owner, suspect), 1e-12))


def evidence(calibration: Calibration, value: float, method: str, fpr: float,
             strong: MeasuredNull | None = None) -> Evidence:
    """Behavioural evidence: the suspect's score held to two nulls at false-positive rate `fpr`.

    The fingerprint's own null (its reference models) says how far independent models of the
    references' strength go.  Real models are stronger, and strong models of one task behave
    alike: scored against one owner's references, independent real models of other authors
    reach 5 to 10 null standard deviations.  So the score must also clear the null measured on
    pairs of independent real models (``python -m models.behaviour_null``), in the same units;
    the p-value is the larger of the two.  `strong` replaces the shipped null (a benchmark holding
    out the owner's own pairs).
    """
    strong = strong or measured_null(f"behaviour-{method}", MIN_STRONG_NULL_STD)
    z = calibration.z(value)
    threshold, p_value = calibration.threshold_at(fpr), calibration.p_value(value)
    detail = f"z {z:.1f} against {len(calibration.null_scores)} reference models"
    if strong is not None:
        threshold = max(threshold, calibration.mean + strong.threshold(fpr) * calibration.std)
        p_value = max(p_value, strong.p_value(z))
        detail += f" and {strong.pairs} pairs of independent real models"
    return Evidence(kind="behaviour", method=method, score=value, threshold=threshold, p_value=p_value,
                    detail=detail)
