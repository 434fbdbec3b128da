"""Turn a similarity score into a verdict with a stated false-positive rate.

The null distribution is the owner's scores against models known to be
independent of it (reference models).  With the handful of references an audit
can afford, empirical quantiles cannot reach a 1% false-positive rate, so we fit
a normal distribution to the null scores (scores are Fisher-z transformed
correlations or log distances, for which a normal is a fair shape) and read the
threshold and p-value off its tail.  The rate is therefore nominal: the model-zoo
benchmark measures the real one.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from verifier.errors import InputError


def _norm():
    """scipy.stats' normal distribution, imported on first use: scipy.stats alone takes 0.6 s to import,
    which every CLI call (even --help) would pay."""
    from scipy.stats import norm

    return norm


#: Fewest reference models a null distribution may be fitted on.
MIN_REFERENCES = 3
#: Default false-positive rate of the decision.
DEFAULT_FPR = 0.01
#: Floor on the null's standard deviation, so near-identical references cannot make it zero.
MIN_STD = 0.02


@dataclass(frozen=True)
class Calibration:
    """Null scores with the references that produced them, and the target false-positive rate."""

    null_scores: tuple[float, ...]
    references: tuple[str, ...]  # sha256 of each reference model
    fpr: float

    @property
    def mean(self) -> float:
        """Mean of the null scores."""
        return sum(self.null_scores) / len(self.null_scores)

    @property
    def std(self) -> float:
        """Sample standard deviation of the null scores, floored at MIN_STD."""
        n = len(self.null_scores)
        variance = sum((s - self.mean) ** 2 for s in self.null_scores) / (n - 1)
        return max(math.sqrt(variance), MIN_STD)

    @property
    def threshold(self) -> float:
        """Scores above this are significant at the nominal false-positive rate."""
        return self.threshold_at(self.fpr)

    def threshold_at(self, fpr: float) -> float:
        """Scores above this are significant at false-positive rate `fpr` (a share of the verdict's, see
        :func:`verifier.method.evidence.share`)."""
        return self.mean + float(_norm().isf(fpr)) * self.std

    def z(self, score: float) -> float:
        """How many null standard deviations `score` lies above the null mean."""
        return (score - self.mean) / self.std

    def p_value(self, score: float) -> float:
        """Chance that an independent model scores at least `score` under the fitted null."""
        return float(_norm().sf(self.z(score)))

    def verdict(self, score: float) -> str:
        """'derived' above the threshold, else 'independent'."""
        return "derived" if score > self.threshold else "independent"

    def to_dict(self) -> dict:
        """JSON-ready form, with the derived threshold for readers of the file."""
        return {**asdict(self), "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """Inverse of :meth:`to_dict` (the stored threshold is recomputed, not trusted)."""
        return calibrate([float(s) for s in data["null_scores"]], [str(r) for r in data["references"]],
                         float(data["fpr"]))


def check_reference_count(count: int) -> None:
    """Refuse too few reference models (checked before any expensive work)."""
    if count < MIN_REFERENCES:
        raise InputError(f"calibration needs at least {MIN_REFERENCES} independent reference models, got {count}")


def calibrate(null_scores: list[float], references: list[str], fpr: float = DEFAULT_FPR) -> Calibration:
    """Check the inputs and build a :class:`Calibration`."""
    if not 0 < fpr < 0.5:
        raise InputError(f"false-positive rate must be in (0, 0.5), got {fpr}")
    check_reference_count(len(null_scores))
    if len(null_scores) != len(references):
        raise InputError(f"{len(null_scores)} null scores for {len(references)} reference models")
    if not all(math.isfinite(s) for s in null_scores):
        raise InputError("a reference model gave a non-finite score")
    return Calibration(tuple(null_scores), tuple(references), fpr)


#: Where the nulls measured on real models live (package data, written by scripts under models/).
NULLS = Path(__file__).parents[1] / "nulls"  # data, beside the packages


@dataclass(frozen=True)
class MeasuredNull:
    """A normal fitted to scores of independent pairs of real models, measured once by a script.

    Unlike a fingerprint's own calibration (a handful of reference models chosen by the owner),
    this null is the same for every fingerprint and ships with verifier: it says how far real,
    independently trained models of other authors go.
    """

    mean: float
    std: float
    pairs: int

    @classmethod
    def fit(cls, scores: list[float], min_std: float = 0.0) -> MeasuredNull:
        """Mean and sample standard deviation of `scores`, the latter floored at `min_std`."""
        mean = sum(scores) / len(scores)
        std = math.sqrt(sum((value - mean) ** 2 for value in scores) / max(len(scores) - 1, 1))
        return cls(mean, max(std, min_std), len(scores))

    def threshold(self, fpr: float) -> float:
        """Scores above this are significant at false-positive rate `fpr`."""
        return self.mean + float(_norm().isf(fpr)) * self.std

    def p_value(self, score: float) -> float:
        """Chance that an independent pair scores at least `score`."""
        return float(_norm().sf((score - self.mean) / self.std))


@functools.cache
def measured_null(name: str, min_std: float) -> MeasuredNull:
    """The null `nulls/<name>.json` (its `scores`) shipped with verifier, std floored at `min_std`.

    Every piece of evidence ships one (a test checks): without it a verdict would rest on the weak references
    alone, so a missing file is a broken installation, not a reason to carry on.
    """
    path = NULLS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"verifier/nulls/{name}.json is missing: the package is incomplete")
    return MeasuredNull.fit([float(value) for value in json.loads(path.read_text())["scores"]], min_std)
