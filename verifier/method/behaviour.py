"""Comparison methods: how similar a suspect is to the owner, as one number (higher = more similar).

Two methods behind one interface, :class:`Method` (``get_method(name)`` gives one): what the owner's
fingerprint keeps of the owner and its references, what a suspect must produce (its evidence),
and the score.  Fingerprinting, verification, audits and ``compare`` ask the method instead of
testing its name.

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

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from verifier.errors import InputError
from verifier.graph.model import Model
from verifier.graph.suspect import Suspect
from verifier.method.calibration import Calibration, MeasuredNull, measured_null
from verifier.method.degradation import Degradation, degrade
from verifier.method.evidence import Evidence
from verifier.method.features import chi_square, colour_histogram, lgp_histogram
from verifier.method.inversion import CriticalImages, Progress, critical_images, initial_image

if TYPE_CHECKING:
    from verifier.method.fingerprint import Fingerprint, Settings

MethodName = Literal["response", "paper"]
METHODS: tuple[MethodName, ...] = ("response", "paper")
_MAX_CORRELATION = 0.999999
#: Relative size below which a QR diagonal entry counts as rounding error (a control adding no direction).
_RANK_TOLERANCE = 1e-9
#: Relative norm below which what a regression leaves of float32 residuals is rounding error.
_EXPLAINED = 1e-6
#: Floor on the spread (in null standard deviations) of the scores real independent models reach.
MIN_STRONG_NULL_STD = 1.0


@dataclass(frozen=True)
class Probes:
    """Images a suspect is asked to restore: `inputs` = D(`targets`)."""

    targets: np.ndarray  # (P, C, H, W)
    inputs: np.ndarray  # (P, C, H / scale, W / scale)


def start_images(settings: Settings, image_shape: tuple[int, int, int]) -> np.ndarray:
    """The seeded (K, C, H, W) images the inversions start from."""
    return np.concatenate([initial_image(seed, (1, *image_shape), settings.recipe.init) for seed in settings.seeds])


def make_probes(critical: np.ndarray, starts: np.ndarray, degradation: Degradation) -> Probes:
    """Probes from the critical images and the starting images of their inversion."""
    targets = np.concatenate([critical, starts]).astype(np.float32)
    return Probes(targets=targets, inputs=degrade(degradation, targets))


def residuals(model: Suspect, probes: Probes) -> np.ndarray:
    """model(input) - target for every probe (one image per call: some models fix the batch to 1; a model with
    a fixed image size gets each probe on its own canvas, see :func:`~verifier.graph.suspect.restore_on_canvas`)."""
    return np.stack([model.restore(image[None])[0] for image in probes.inputs]) - probes.targets


def partial_correlation(a: np.ndarray, b: np.ndarray, controls: np.ndarray) -> float:
    """Correlation of `a` and `b` after regressing both on `controls` (n, ...) and a constant.

    Degenerate inputs (found by property tests) give 0, not noise: a control that is constant or a
    combination of the others (two identical reference models) adds no direction to remove, so its
    spurious QR column is dropped; and what the controls explain entirely (a residual that is a constant,
    or a reference's own) leaves only rounding error, which is not correlated with anything.
    """
    design = np.concatenate([np.ones((a.size, 1)), controls.reshape(len(controls), -1).T.astype(np.float64)], axis=1)
    basis, triangle = np.linalg.qr(design)
    diagonal = np.abs(np.diag(triangle))
    keep = diagonal > _RANK_TOLERANCE * max(float(diagonal.max()), 1.0)
    if not keep.all():  # only then: a copy would change the floating-point summation order of every score
        basis = basis[:, keep]
    a = a.ravel().astype(np.float64)
    b = b.ravel().astype(np.float64)
    a_left = a - basis @ (basis.T @ a)
    b_left = b - basis @ (basis.T @ b)
    if not (_left_over(a_left, a) and _left_over(b_left, b)):
        return 0.0
    denominator = math.sqrt(float(a_left @ a_left) * float(b_left @ b_left))
    return float(a_left @ b_left) / denominator if denominator > 0 else 0.0


def _left_over(residual: np.ndarray, original: np.ndarray) -> bool:
    """Whether a regression left more than (float32) rounding error of `original`."""
    return float(residual @ residual) > _EXPLAINED**2 * max(float(original @ original), 1e-300)


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
    threshold = max(threshold, calibration.mean + strong.threshold(fpr) * calibration.std)
    p_value = max(p_value, strong.p_value(z))
    detail += f" and {strong.pairs} pairs of independent real models"
    return Evidence(kind="behaviour", method=method, score=value, threshold=threshold, p_value=p_value,
                    detail=detail)


@dataclass(frozen=True)
class OwnerSide:
    """What a method keeps of the owner and its references, and the references' own scores (the null).

    `residuals` (P, C, H, W) and `references` (n, P, C, H, W) are the ``response`` method's
    residuals on the probes; both are empty for ``paper``, which keeps only the critical images.
    """

    residuals: np.ndarray
    references: np.ndarray
    null: list[float]


class Method(Protocol):
    """One way of comparing behaviour."""

    name: MethodName

    def owner_side(self, model: Model, references: list[Model], found: CriticalImages, settings: Settings,
                   progress: Progress | None) -> OwnerSide:
        """The owner's stored evidence and the null, each reference scored as a suspect would be."""

    def suspect_evidence(self, fingerprint: Fingerprint, suspect: Suspect, progress: Progress | None) -> np.ndarray:
        """What the suspect produces for the comparison: the only expensive step of a verification."""

    def score(self, fingerprint: Fingerprint, evidence: np.ndarray) -> float:
        """Similarity of a suspect, given its evidence, to the fingerprint's owner."""

    def evidence_depends_on(self, fingerprint: Fingerprint) -> str | None:
        """A digest of the owner's data a suspect's evidence depends on besides the settings (None: nothing), so
        an audit shares the evidence between owners fingerprinted with the same settings."""

    def fingerprints_score(self, first: Fingerprint, second: Fingerprint) -> float | None:
        """The score of two fingerprints against each other without their models, or None if the method needs
        the suspect model itself."""


class Response:
    """The suspect's residuals on the owner's probes, against the references' (black-box)."""

    name: MethodName = "response"

    def owner_side(self, model: Model, references: list[Model], found: CriticalImages, settings: Settings,
                   progress: Progress | None) -> OwnerSide:
        probes = make_probes(found.images, start_images(settings, found.images.shape[1:]), settings.degradation)
        if progress:
            progress(f"running the owner and {len(references)} reference models on {len(probes.targets)} probes")
        own = residuals(model, probes)
        others = np.stack([residuals(reference, probes) for reference in references]).astype(np.float32)
        # Each reference is scored with the others as controls, as a suspect is with all of them.
        null = [response_score(own, others[j], np.delete(others, j, axis=0)) for j in range(len(others))]
        return OwnerSide(own.astype(np.float32), others, null)

    def suspect_evidence(self, fingerprint: Fingerprint, suspect: Suspect, progress: Progress | None) -> np.ndarray:
        if progress:
            progress(f"running the suspect on {len(fingerprint.residuals)} probes")
        return residuals(suspect, fingerprint.probes)

    def score(self, fingerprint: Fingerprint, evidence: np.ndarray) -> float:
        return response_score(fingerprint.residuals, evidence, fingerprint.references)

    def evidence_depends_on(self, fingerprint: Fingerprint) -> str | None:
        return hashlib.sha256(fingerprint.critical.tobytes()).hexdigest()  # the probes are made from them

    def fingerprints_score(self, first: Fingerprint, second: Fingerprint) -> float | None:
        return None


class Paper:
    """The suspect's own critical images from the same seeds, compared through histograms (Quan et al.)."""

    name: MethodName = "paper"

    def owner_side(self, model: Model, references: list[Model], found: CriticalImages, settings: Settings,
                   progress: Progress | None) -> OwnerSide:
        null = []
        for index, reference in enumerate(references):
            if progress:
                progress(f"reference model {index + 1}/{len(references)}")
            null.append(paper_score(found.images, _critical(reference, settings, None)))
        empty = np.zeros((0,), np.float32)
        return OwnerSide(empty, empty, null)

    def suspect_evidence(self, fingerprint: Fingerprint, suspect: Suspect, progress: Progress | None) -> np.ndarray:
        if not isinstance(suspect, Model):
            raise InputError("the fingerprint was made with --method paper, which inverts the suspect and needs its "
                             "gradients; a suspect known only by its outputs needs a --method response fingerprint")
        return _critical(suspect, fingerprint.settings, progress)

    def score(self, fingerprint: Fingerprint, evidence: np.ndarray) -> float:
        return paper_score(fingerprint.critical, evidence)

    def evidence_depends_on(self, fingerprint: Fingerprint) -> str | None:
        return None  # a suspect's critical images depend on the settings only

    def fingerprints_score(self, first: Fingerprint, second: Fingerprint) -> float | None:
        return paper_score(first.critical, second.critical)


def _critical(model: Model, settings: Settings, progress: Progress | None) -> np.ndarray:
    return critical_images(model, settings.recipe, settings.degradation, settings.seeds, progress).images


_METHODS: dict[str, Method] = {"response": Response(), "paper": Paper()}


def get_method(name: str) -> Method:
    """The method called `name` (one of :data:`METHODS`)."""
    return _METHODS[name]
