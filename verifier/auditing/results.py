"""What an audit finds: one row per suspect, one pair per owner, and the gate that turns them into an exit code.

These are the typed objects every other part of the audit hands around (workers return rows, engines collect
them, :mod:`verifier.auditing.results_json`, :mod:`verifier.auditing.report` and :mod:`verifier.auditing.table`
present them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from verifier.errors import InputError
from verifier.method.evidence import EVIDENCE_KINDS, Evidence, EvidenceKind
from verifier.method.fingerprint import Fingerprint

Outcome = Literal["derived", "similar", "independent", "incomparable", "error"]
_OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
#: What `--fail-on` can name; "independent" also covers suspects no owner can be compared with.
FAIL_ON = ("derived", "similar", "independent", "error", "never")
#: The default gate: a model derived from an owner's, or a file that could not be audited, fails it.
DEFAULT_FAIL_ON = ("derived", "error")
Engine = Literal["local", "ray"]
#: Where suspects run: ``local`` processes on this machine, or ``ray`` tasks on a Ray cluster (the ray extra).
ENGINES: tuple[Engine, ...] = ("local", "ray")


@dataclass(frozen=True)
class Owner:
    """An owner fingerprint taking part in the audit, named for tables and reports."""

    name: str
    path: Path
    sha256: str  # of the fingerprint file
    fingerprint: Fingerprint = field(repr=False, compare=False)


@dataclass(frozen=True)
class PairResult:
    """One suspect against one owner."""

    owner: str
    verdict: Outcome
    score: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    fpr: float | None = None
    method: str | None = None
    seconds: float = 0.0
    cached: bool = False  # the suspect's behavioural evidence, or the whole verdict, came from the cache
    evidence_key: str | None = None  # cache key of the suspect's behavioural evidence, for reports
    message: str | None = None  # why the pair is incomparable or failed
    evidence: tuple[Evidence, ...] = ()  # every piece of evidence, with its p-value
    decided_by: EvidenceKind | None = None  # the kind of evidence that made the verdict

    def piece(self, kind: EvidenceKind) -> Evidence | None:
        """The evidence of one kind, if it was gathered."""
        return next((piece for piece in self.evidence if piece.kind == kind), None)

    def to_dict(self) -> dict:
        """JSON-ready form: the audit JSON's pair (see :mod:`verifier.auditing.results_json`) plus the evidence's
        cache key."""
        return {"owner": self.owner, "verdict": self.verdict, "score": self.score, "threshold": self.threshold,
                "p_value": self.p_value, "fpr": self.fpr, "method": self.method, "seconds": self.seconds,
                "cached": self.cached, "message": self.message, "decided_by": self.decided_by,
                "evidence": [piece.to_dict() for piece in self.evidence], "evidence_key": self.evidence_key}

    @classmethod
    def from_dict(cls, record: dict) -> PairResult:
        """Back from :meth:`to_dict` (a cached verdict).  Raises KeyError, TypeError or ValueError on a record
        that is not one, so a damaged cache entry is judged again rather than trusted."""
        if record["verdict"] not in _OUTCOMES or record["decided_by"] not in (*EVIDENCE_KINDS, None):
            raise ValueError("not a verdict record")
        pieces = tuple(Evidence(kind=piece["kind"], method=str(piece["method"]), score=float(piece["score"]),
                                threshold=float(piece["threshold"]), p_value=float(piece["p_value"]),
                                detail=str(piece["detail"])) for piece in record["evidence"])
        if any(piece.kind not in EVIDENCE_KINDS for piece in pieces):
            raise ValueError("not a verdict record")
        def number(name: str) -> float | None:
            return None if record[name] is None else float(record[name])

        def text(name: str) -> str | None:
            return None if record[name] is None else str(record[name])

        return cls(owner=str(record["owner"]), verdict=record["verdict"], score=number("score"),
                   threshold=number("threshold"), p_value=number("p_value"), fpr=number("fpr"),
                   method=text("method"), seconds=float(record["seconds"]), cached=bool(record["cached"]),
                   evidence_key=text("evidence_key"), message=text("message"), evidence=pieces,
                   decided_by=record["decided_by"])


@dataclass(frozen=True)
class AuditRow:
    """One suspect: what it is, how it was read, and its verdict against the best-matching owner."""

    path: str
    name: str
    verdict: Outcome
    seconds: float
    sha256: str | None = None
    format: str | None = None  # the exporter that read it
    onnx_sha256: str | None = None  # of the ONNX file verified (the export, or the file itself)
    export: dict | None = None  # the exporter's record (versions, equivalence error) for non-ONNX files
    export_cached: bool = False
    pairs: tuple[PairResult, ...] = ()
    error: str | None = None  # why the file could not be audited at all
    endpoint: dict | None = None  # for an endpoint: its URL, model and the queries it was sent (see Usage)

    @property
    def best(self) -> PairResult | None:
        """The owner this suspect resembles most: the lowest p-value among the pairs that were scored."""
        scored = [(pair, pair.p_value) for pair in self.pairs if pair.p_value is not None]
        return min(scored, key=lambda scored_pair: scored_pair[1])[0] if scored else None

    @property
    def message(self) -> str | None:
        """The row's error, else the first pair's error, else the first reason for being incomparable."""
        messages = [pair.message for pair in sorted(self.pairs, key=lambda pair: pair.verdict != "error")
                    if pair.message]
        return self.error or next(iter(messages), None)


@dataclass(frozen=True)
class AuditResult:
    """Everything one audit found, in suspect order."""

    created: str  # ISO 8601 UTC
    owners: tuple[Owner, ...]
    rows: tuple[AuditRow, ...]
    skipped: tuple[str, ...]  # files in the given folders that no exporter recognises
    jobs: int
    threads: int
    cache: str | None
    seconds: float
    engine: Engine = "local"

    def counts(self) -> dict[str, int]:
        """Number of suspects per verdict."""
        return {outcome: sum(row.verdict == outcome for row in self.rows)
                for outcome in ("derived", "similar", "independent", "incomparable", "error")}

    def failing(self, fail_on: Iterable[str]) -> list[AuditRow]:
        """Rows that fail the gate `fail_on` (see FAIL_ON)."""
        wanted = set(fail_on) - {"never"}
        if "independent" in wanted:
            wanted.add("incomparable")
        return [row for row in self.rows if row.verdict in wanted]

    def exit_code(self, fail_on: Iterable[str]) -> int:
        """0: the gate passes; 2: it fails on a file that could not be audited; 1: it fails on a verdict."""
        failing = self.failing(fail_on)
        if any(row.verdict == "error" for row in failing):
            return 2
        return 1 if failing else 0


def check_fail_on(fail_on: Sequence[str]) -> tuple[str, ...]:
    """Validate a gate: names from FAIL_ON, and 'never' alone."""
    unknown = sorted(set(fail_on) - set(FAIL_ON))
    if unknown:
        raise InputError(f"unknown --fail-on value(s) {', '.join(unknown)}; choose from {', '.join(FAIL_ON)}")
    if "never" in fail_on and len(set(fail_on)) > 1:
        raise InputError("--fail-on never cannot be combined with other values")
    return tuple(dict.fromkeys(fail_on))

