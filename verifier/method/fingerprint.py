"""The owner side: a model's :class:`Fingerprint` (critical images, evidence, calibration).

A fingerprint records every setting the suspect side must repeat (method,
recipe, degradation, seeds, thread count) plus the owner's evidence for the
chosen method and the null distribution of scores against independent
reference models, so that `verify` needs nothing but the file and the suspect,
and the owner's weight sketch (:mod:`verifier.method.weights`) for lineage evidence.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from verifier.errors import InputError
from verifier.graph.model import Model
from verifier.graph.suspect import Suspect
from verifier.method.behaviour import MethodName, Probes, get_method, make_probes, start_images
from verifier.method.calibration import DEFAULT_FPR, Calibration, calibrate, check_reference_count
from verifier.method.degradation import Degradation
from verifier.method.inversion import CriticalImages, Progress, Recipe, critical_images
from verifier.method.weights import EMPTY_SKETCH, WeightSketch, sketch

#: Default number of critical images (seeds) per fingerprint.
DEFAULT_SEEDS = 4
#: onnxruntime reductions can differ across thread counts, so the count is part of the settings.
DEFAULT_THREADS = 2


@dataclass(frozen=True)
class Settings:
    """Everything the suspect side must repeat to be comparable."""

    method: MethodName
    recipe: Recipe
    degradation: Degradation
    seeds: tuple[int, ...]
    threads: int = DEFAULT_THREADS

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"method": self.method, "recipe": self.recipe.to_dict(), "degradation": self.degradation.to_dict(),
                "seeds": list(self.seeds), "threads": self.threads}

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        """Inverse of :meth:`to_dict`."""
        return cls(method=data["method"], recipe=Recipe.from_dict(data["recipe"]),
                   degradation=Degradation.from_dict(data["degradation"]),
                   seeds=tuple(int(s) for s in data["seeds"]), threads=int(data["threads"]))


@dataclass(frozen=True)
class Fingerprint:
    """An owner model's fingerprint.

    `residuals` are the owner's residuals on the probes (P, C, H, W) and
    `references` the reference models' residuals (n, P, C, H, W), the controls of
    the partial correlation (both empty for the ``paper`` method).
    """

    settings: Settings
    owner: dict  # sha256 and I/O of the owner model
    critical: np.ndarray  # (K, C, H, W) in [0, 1]
    residuals: np.ndarray
    references: np.ndarray
    calibration: Calibration
    cost: dict  # gradient evaluations and seconds spent on the owner's critical images
    weights: WeightSketch = EMPTY_SKETCH  # the owner's weight-lineage sketch (empty: none of its layers qualify)
    signer: str | None = None  # public key that signed the file it was read from (see verifier.method.signing)

    @property
    def starts(self) -> np.ndarray:
        """The seeded images each inversion started from."""
        return start_images(self.settings, self.critical.shape[1:])

    @functools.cached_property
    def probes(self) -> Probes:
        """What the suspect is asked to restore (``response`` method); computed once per fingerprint."""
        return make_probes(self.critical, self.starts, self.settings.degradation)


def io_summary(model: Suspect) -> dict:
    """The I/O facts a suspect must share with the owner to be compared."""
    return {"channels": model.io.channels, "out_channels": model.io.out_channels, "scale": model.io.scale}


def check_comparable(owner: dict, suspect: Suspect, label: str = "suspect") -> None:
    """Refuse a model whose channels or scale differ from the owner's."""
    got = io_summary(suspect)
    for key, value in got.items():
        if owner[key] != value:
            raise InputError(f"{label} has {key}={value} but the owner model has {key}={owner[key]}: "
                             "they cannot be compared")


def evidence(fingerprint: Fingerprint, suspect: Suspect, progress: Progress | None = None) -> np.ndarray:
    """The suspect's side of the comparison: its residuals on the owner's probes (``response``) or its
    own critical images (``paper``, which inverts the suspect: only a model held as a file has the
    gradients that takes).

    Kept apart from :func:`score_evidence` because it is the only expensive part, so an audit can
    cache it per suspect and settings and show it in a report.
    """
    check_comparable(fingerprint.owner, suspect)
    return get_method(fingerprint.settings.method).suspect_evidence(fingerprint, suspect, progress)


def score_evidence(fingerprint: Fingerprint, suspect_evidence: np.ndarray) -> float:
    """The method's similarity of a suspect, given its :func:`evidence`, to the fingerprint's owner."""
    return get_method(fingerprint.settings.method).score(fingerprint, suspect_evidence)


def score(fingerprint: Fingerprint, suspect: Suspect, progress: Progress | None = None) -> float:
    """The method's similarity of `suspect` to the fingerprint's owner."""
    return score_evidence(fingerprint, evidence(fingerprint, suspect, progress))


def create(model: Model, references: list[Model], settings: Settings, fpr: float = DEFAULT_FPR,
           progress: Progress | None = None, found: CriticalImages | None = None) -> Fingerprint:
    """Compute `model`'s critical images and evidence, and calibrate against `references`.

    `found` reuses critical images computed earlier with the same settings (a benchmark
    calibrating one owner against several reference sets inverts it once).
    """
    if model.source is None:
        raise InputError("the owner model must come from a file (its sha256 goes into the fingerprint)")
    check_reference_count(len(references))
    owner = {"sha256": model.source.sha256, **io_summary(model)}
    lineage = sketch(model.original) if model.original is not None else EMPTY_SKETCH
    for index, reference in enumerate(references):
        check_comparable(owner, reference, f"reference model {index + 1}")
    if found is None:
        found = critical_images(model, settings.recipe, settings.degradation, settings.seeds, progress)
    cost = {"evaluations": found.evaluations, "seconds": round(found.seconds, 3)}
    names = [ref.source.sha256 if ref.source else f"reference-{i}" for i, ref in enumerate(references)]
    side = get_method(settings.method).owner_side(model, references, found, settings, progress)
    return Fingerprint(settings, owner, found.images, side.residuals, side.references,
                       calibrate(side.null, names, fpr), cost, lineage)
