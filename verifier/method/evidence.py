"""Pieces of evidence about one suspect, and the one verdict they support together.

Two kinds of evidence stand behind one interface (:class:`Evidence`: a score, the threshold it
was held to, a p-value):

- ``weights`` (lineage): the suspect's convolution kernels against the owner's sketch
  (:mod:`verifier.method.weights`).  Only for suspects we hold as a file; independent trainings share
  no kernels, so a small p-value here shows the suspect was made from the owner's weights.
- ``behaviour``: the suspect's outputs on the owner's probes (or its own critical images),
  against reference models (:mod:`verifier.method.behaviour`).  Works on a black box, but strong models of
  one task behave alike: a model better than the references can look "similar" without any
  lineage, so behaviour alone never says ``derived``.

The verdict (:func:`decide`) tests each piece at ``fpr / n`` (Bonferroni), so the stated false
positive rate holds for the verdict as a whole whatever the pieces' dependence:

- ``derived``: lineage evidence below its threshold;
- ``similar``: only behaviour below its threshold ("similar behaviour, lineage not shown": a
  distilled copy, or an independent model that behaves like the owner; the tool cannot tell);
- ``independent``: nothing below its threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, get_args

EvidenceKind = Literal["weights", "behaviour"]
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = get_args(EvidenceKind)
Outcome = Literal["derived", "similar", "independent"]
#: Evidence kinds that show lineage (a copy of the owner's parameters), as opposed to resemblance.
LINEAGE: tuple[EvidenceKind, ...] = ("weights",)
#: What each outcome means, in the words the CLI and reports print.
MEANING: dict[str, str] = {
    "derived": "made from the owner's model",
    "similar": "similar behaviour, lineage not shown",
    "independent": "no evidence of derivation",
}


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence: `score` against `threshold` (at this piece's share of the FPR), and its p-value."""

    kind: EvidenceKind
    method: str  # how it was measured: "weights", "response" or "paper"
    score: float
    threshold: float
    p_value: float
    detail: str = ""  # e.g. how many of the owner's layers were aligned

    @property
    def significant(self) -> bool:
        """Above its threshold."""
        return self.score > self.threshold

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {**asdict(self), "significant": self.significant}


def share(fpr: float, pieces: int) -> float:
    """The false-positive rate each of `pieces` tests gets so that the verdict keeps `fpr` (Bonferroni)."""
    return fpr / max(pieces, 1)


def decide(evidence: Sequence[Evidence]) -> tuple[Outcome, EvidenceKind | None]:
    """The outcome and the kind of evidence that decided it (None: nothing was significant).

    Each piece's threshold must already be set at :func:`share` of the verdict's FPR.
    """
    for piece in evidence:
        if piece.kind in LINEAGE and piece.significant:
            return "derived", piece.kind
    for piece in evidence:
        if piece.significant:
            return "similar", piece.kind
    return "independent", None


def adjusted_p_value(evidence: Sequence[Evidence]) -> float:
    """The verdict's p-value: the smallest piece's, times the number of pieces (Bonferroni), at most 1."""
    return min(1.0, min(piece.p_value for piece in evidence) * len(evidence)) if evidence else 1.0


def format_p(value: float) -> str:
    """A p-value for people: one below what a double holds reads '< 1e-300', not 0."""
    return f"{value:.2g}" if value > 0 else "< 1e-300"
