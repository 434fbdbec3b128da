"""One suspect against every owner: export (cached), load, gather evidence (cached), judge, cache the verdicts.

:class:`Worker` is the per-suspect code every engine runs (in this process, in a local worker process, or in a
Ray task), so verdicts are the same whichever engine ran them.  Its :meth:`Worker.lookup` answers a suspect
from the cache alone, without exporting or loading it, and runs in the driver before any worker starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier.auditing.cache import Cache, key
from verifier.auditing.convert import Converter
from verifier.auditing.discovery import load_owners
from verifier.auditing.results import AuditRow, Outcome, Owner, PairResult
from verifier.errors import InputError, VerifierError, first_line
from verifier.graph.onnx_file import external_data_files, sha256_file, source_digest
from verifier.method.behaviour import get_method
from verifier.method.fingerprint import Fingerprint
from verifier.method.weights import WeightSketch
from verifier.remote.endpoint import EndpointSpec

#: What an audit runs: a file (path, display name) or an endpoint.
AuditInput = tuple[Path, str] | EndpointSpec

_FRAMEWORK_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                               "TF_NUM_INTRAOP_THREADS")


@dataclass
class Worker:
    """What a worker process keeps between suspects: the owners (probes computed once) and the cache."""

    owners: tuple[Owner, ...]
    cache: Cache
    threads: int
    converter: Converter  # the exporters, from the API

    def audit(self, path: Path, name: str) -> AuditRow:
        started = time.perf_counter()
        known: dict = {}  # what _audit learnt before failing (digest, format) stays in the error row
        try:
            row = self._audit(path, name, known)
        except VerifierError as exc:
            row = AuditRow(path=str(path), name=name, verdict="error", seconds=0.0, error=str(exc), **known)
        except OSError as exc:  # a file that vanished, a symlink loop, no permission
            row = AuditRow(path=str(path), name=name, verdict="error", seconds=0.0, **known,
                           error=f"cannot read {path}: {exc.strerror or exc}")
        except Exception as exc:  # one bad file must never stop the audit
            row = AuditRow(path=str(path), name=name, verdict="error", seconds=0.0, **known,
                           error=f"internal error: {type(exc).__name__}: {first_line(exc)}")
        return dataclasses.replace(row, seconds=round(time.perf_counter() - started, 3))

    def audit_one(self, suspect: AuditInput) -> AuditRow:
        """A file (path, display name) or an endpoint."""
        return self.audit_endpoint(suspect) if isinstance(suspect, EndpointSpec) else self.audit(*suspect)

    def audit_endpoint(self, spec: EndpointSpec) -> AuditRow:
        """One endpoint, questioned for every comparable owner (behaviour only); its queries are counted in the
        row, an error row included."""
        from verifier.method.fingerprint import check_comparable
        from verifier.remote.endpoint import FORMAT, Connection, connect

        started = time.perf_counter()
        row = AuditRow(path=spec.url, name=spec.name, verdict="error", seconds=0.0, format=FORMAT)
        connection = Connection(spec)
        own = f"endpoint {spec.url}: "  # the row is the endpoint: its messages need not repeat the URL
        try:
            model = connect(spec, connection=connection)
            needed = 0
            for owner in self.owners:
                with contextlib.suppress(InputError):  # an incomparable owner sends no query
                    check_comparable(owner.fingerprint.owner, model)
                    needed += len(owner.fingerprint.residuals)
            model.expect(needed)
            pairs = tuple(self._pair(owner, model, None, reuse=False) for owner in self.owners)
            pairs = tuple(dataclasses.replace(pair, message=pair.message.removeprefix(own)) if pair.message else pair
                          for pair in pairs)
            row = dataclasses.replace(row, verdict=_row_verdict(pairs), pairs=pairs)
        except VerifierError as exc:
            row = dataclasses.replace(row, error=str(exc).removeprefix(own))
        except Exception as exc:  # one bad endpoint must never stop the audit
            row = dataclasses.replace(row, error=f"internal error: {type(exc).__name__}: {first_line(exc)}")
        return dataclasses.replace(row, endpoint={**spec.to_dict(), **connection.usage.to_dict()},
                                   seconds=round(time.perf_counter() - started, 3))

    def lookup(self, path: Path, name: str) -> AuditRow | None:
        """The row of a suspect whose every verdict is in the cache, found without exporting or loading it (what
        makes a repeated audit cheap; run by the driver, before any worker starts).  None when anything is
        missing or unreadable: the suspect then goes to a worker, which also reports any error."""
        started = time.perf_counter()
        try:
            digest = source_digest(path)
            framework = self.converter.format(path)
            if framework == "onnx":
                if external_data_files(path):  # its content digest needs the external data read: load it
                    return None
                record, onnx_sha256 = None, digest
            else:
                record = self.cache.read_export(_export_key(digest, framework))
                if record is None:
                    return None
                onnx_sha256 = record["onnx_sha256"]
        except (VerifierError, OSError, KeyError):
            return None
        pairs = [self._cached_verdict(owner, onnx_sha256) for owner in self.owners]
        if any(pair is None for pair in pairs):
            return None
        found = tuple(pair for pair in pairs if pair is not None)
        return AuditRow(path=str(path), name=name, verdict=_row_verdict(found), sha256=digest, format=framework,
                        onnx_sha256=onnx_sha256, export=record, export_cached=record is not None, pairs=found,
                        seconds=round(time.perf_counter() - started, 3))

    def _cached_verdict(self, owner: Owner, onnx_sha256: str) -> PairResult | None:
        record = self.cache.read_verdict(self._verdict_key(owner, onnx_sha256))
        try:
            pair = PairResult.from_dict(record) if record is not None else None
        except (KeyError, TypeError, ValueError):
            return None
        return dataclasses.replace(pair, cached=True, seconds=0.0, owner=owner.name) if pair else None

    def _verdict_key(self, owner: Owner, onnx_sha256: str) -> str:
        """A verdict depends on the owner's fingerprint file, the suspect's ONNX content and the thread count
        (and, through :func:`key`, the verifier version, whose nulls and rules it applies)."""
        return key(kind="verdict", owner=owner.sha256, suspect=onnx_sha256, threads=self.threads)

    def _audit(self, path: Path, name: str, known: dict) -> AuditRow:
        from verifier.graph.model import load_model
        from verifier.method.verification import suspect_sketch

        known["sha256"] = source_digest(path)
        known["format"] = framework = self.converter.format(path)
        onnx_path, record, cached = path, None, False
        if framework != "onnx":
            onnx_path, record, cached = self._export(path, known["sha256"], framework)
        model = load_model(onnx_path, threads=self.threads)
        lineage = suspect_sketch(model)
        pairs = tuple(self._pair(owner, model, lineage) for owner in self.owners)
        assert model.source is not None  # load_model records the file it read
        for owner, pair in zip(self.owners, pairs, strict=True):
            if pair.verdict != "error":  # a failure is tried again next time
                self.cache.write_verdict(self._verdict_key(owner, model.source.sha256), pair.to_dict())
        return AuditRow(path=str(path), name=name, verdict=_row_verdict(pairs), seconds=0.0, **known,
                        onnx_sha256=model.source.sha256, export=record, export_cached=cached, pairs=pairs)

    def _export(self, path: Path, digest: str, framework: str) -> tuple[Path, dict, bool]:
        entry = _export_key(digest, framework)
        target = self.cache.export_path(entry)
        record = self.cache.read_export(entry)
        if record is not None:
            return target, record, True
        record = {**self.converter.convert(path, framework, target), "output": None,
                  "onnx_sha256": sha256_file(target)}
        self.cache.write_export_record(entry, record)
        return target, record, False

    def _pair(self, owner: Owner, model, lineage: WeightSketch | None, reuse: bool = True) -> PairResult:
        """The verdict of one owner on one suspect.  The suspect's evidence is cached under its ONNX sha256 and
        reused; without `reuse` (an endpoint: the model behind a URL may change) it is always asked for afresh,
        and kept under a key of the answers themselves only for the HTML report."""
        from verifier.method.fingerprint import check_comparable, evidence
        from verifier.method.verification import judge

        started = time.perf_counter()
        try:
            check_comparable(owner.fingerprint.owner, model)
        except InputError as exc:
            return PairResult(owner=owner.name, verdict="incomparable", message=str(exc))
        fp = owner.fingerprint
        settings = {"settings": fp.settings.to_dict(), "threads": self.threads, "probes": _probe_digest(fp)}
        entry = key(kind="evidence", suspect=model.source.sha256, **settings) if reuse else None
        try:
            found = self.cache.read_evidence(entry) if entry else None
            cached = found is not None
            if found is None:
                found = evidence(fp, model)
                entry = entry or key(kind="endpoint-evidence", answers=hashlib.sha256(found.tobytes()).hexdigest(),
                                     **settings)
                self.cache.write_evidence(entry, found)
            verdict = judge(fp, found, started, lineage)
        except VerifierError as exc:
            return PairResult(owner=owner.name, verdict="error", message=str(exc),
                              seconds=round(time.perf_counter() - started, 3))
        return PairResult(owner=owner.name, verdict=verdict.verdict, score=verdict.score, threshold=verdict.threshold,
                          p_value=verdict.p_value, fpr=verdict.fpr, method=verdict.method, seconds=verdict.seconds,
                          cached=cached, evidence_key=entry, evidence=verdict.evidence,
                          decided_by=verdict.decided_by)


def _export_key(source_sha256: str, framework: str) -> str:
    return key(kind="export", source_sha256=source_sha256, exporter=framework)


def _probe_digest(fp: Fingerprint) -> str | None:
    """What a suspect's evidence depends on besides the settings (see :meth:`Method.evidence_depends_on`)."""
    return get_method(fp.settings.method).evidence_depends_on(fp)


def _row_verdict(pairs: Sequence[PairResult]) -> Outcome:
    """derived if any owner says so; else error if any pair failed (the gate cannot vouch for that owner);
    else similar if any owner's behaviour matched; else independent if any owner was compared; else
    incomparable."""
    verdicts = {pair.verdict for pair in pairs}
    return next(outcome for outcome in ("derived", "error", "similar", "independent", "incomparable")
                if outcome in verdicts)


_WORKER: Worker | None = None


def prepare_worker_process(threads: int) -> None:
    """Cap every framework's threads at `threads` and send this process's stdout to stderr.  Called where a
    worker starts (a local pool's initialiser, a Ray task), before any framework is imported there: frameworks
    size their pools from the machine, not from the worker's share of it, and print from native code, while the
    parent's stdout may carry --json."""
    for variable in _FRAMEWORK_THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.dup2(2, 1)


def start_worker(owner_paths: list[Path], cache_root: Path, threads: int, converter: Converter) -> None:
    """Worker process initialiser: cap every framework's threads, keep stdout clean, load the owners once."""
    global _WORKER
    prepare_worker_process(threads)
    _WORKER = Worker(load_owners(owner_paths), Cache(cache_root), threads, converter)


def audit_in_worker(suspect: AuditInput) -> AuditRow:
    """What a local pool runs for each suspect, with the Worker :func:`start_worker` made."""
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.audit_one(suspect)


def available_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_failed(suspect: AuditInput, exc: BaseException) -> AuditRow:
    """The error row of a suspect whose worker died (a native crash, a lost node) or whose task failed."""
    path, name = (suspect.url, suspect.name) if isinstance(suspect, EndpointSpec) else suspect
    return AuditRow(path=str(path), name=name, verdict="error", seconds=0.0,
                    error=f"worker failed: {type(exc).__name__}: {first_line(exc)}")
