"""Audit many suspect models, in any supported format, against one or more owner fingerprints.

Data flow: :func:`discover` turns files and folders into suspect paths (a folder yields the files
some exporter recognises); :func:`run` hands each suspect to a worker process, which exports it if
it is not ONNX (cached), loads it, and for every owner computes its evidence (cached) and verdict;
the rows come back as :class:`AuditRow` and make up an :class:`AuditResult`. Each owner's verdict is
cached too, under the suspect's ONNX digest, so a repeated audit answers unchanged files from the
cache without a worker. Anything that goes wrong with one file (unknown format, corrupt bytes,
failed export, a model that outputs NaN) becomes that row's error, never the audit's: only unusable
owners or an empty suspect list stop it. Suspects can also be inference endpoints
(:class:`~verifier.remote.endpoint.EndpointSpec`, from ``[[endpoints]]`` in verifier.toml): each is
questioned like a file's model, on behaviour only, its evidence never taken from the cache (the
model behind a URL can change), and becomes one row, an error row when it fails.

Parallelism: suspects run in separate processes (exporters import whole frameworks, and
onnxruntime sessions are not shared).  Each worker uses `threads` intra-op threads
(default: the owners' recorded thread count, so verdicts match ``verifier verify``), and
there are at most ``cores // threads`` workers, so the machine is never oversubscribed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

from verifier.auditing.cache import Cache, key
from verifier.errors import InputError, VerifierError, first_line
from verifier.method.behaviour import get_method
from verifier.method.evidence import EVIDENCE_KINDS, Evidence, EvidenceKind, format_p
from verifier.method.fingerprint import Fingerprint
from verifier.method.weights import WeightSketch
from verifier.remote.endpoint import EndpointSpec

#: What an audit runs: a file (path, display name) or an endpoint.
AuditInput = tuple[Path, str] | EndpointSpec

Outcome = Literal["derived", "similar", "independent", "incomparable", "error"]
_OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
#: What `--fail-on` can name; "independent" also covers suspects no owner can be compared with.
FAIL_ON = ("derived", "similar", "independent", "error", "never")
#: The default gate: a model derived from an owner's, or a file that could not be audited, fails it.
DEFAULT_FAIL_ON = ("derived", "error")
Engine = Literal["local", "ray"]
#: Where suspects run: ``local`` processes on this machine, or ``ray`` tasks on a Ray cluster (the ray extra).
ENGINES: tuple[Engine, ...] = ("local", "ray")
_FRAMEWORK_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                               "TF_NUM_INTRAOP_THREADS")


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


# -- inputs ---------------------------------------------------------------------------

def load_owners(paths: Sequence[Path]) -> tuple[Owner, ...]:
    """Read the owner fingerprints; names are the file stems, made unique with their folder if needed."""
    from verifier.graph.onnx_file import sha256_file
    from verifier.method import fingerprint_file

    if not paths:
        raise InputError("no owner fingerprint given (--owner FP, or [[owners]] in verifier.toml)")
    stems = [Path(path).stem for path in paths]
    owners = []
    for path, stem in zip(map(Path, paths), stems, strict=True):
        fingerprint = fingerprint_file.load(path)
        name = stem if stems.count(stem) == 1 else f"{path.parent.name}/{stem}"
        owners.append(Owner(name, path, sha256_file(path), fingerprint))
    return tuple(owners)


def _real(path: Path) -> Path | None:
    """Where `path` really is, or None for a symlink loop or an unreadable link."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return None


def _entries(folder: Path, recognised, seen: set[Path] | None = None) -> Iterator[Path]:
    """Files under `folder` and the model folders (SavedModels) in it, whose insides are one model: not
    descended into.  Hidden files and folders are left out.  Each real file or folder is visited once, however
    many symlinks lead to it (a link back up the tree would otherwise recurse until the OS gives up); a broken
    or looping link is yielded as it is, to become one error row."""
    seen = set() if seen is None else seen
    real = _real(folder)
    if real is None or real in seen:
        return
    seen.add(real)
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        target = _real(path)
        if target is None:
            yield path
        elif target.is_dir():
            if recognised(path):
                if target not in seen:
                    seen.add(target)
                    yield path
            else:
                yield from _entries(path, recognised, seen)
        elif target not in seen:
            seen.add(target)
            yield path


def discover(inputs: Sequence[Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(suspects as (path, display name), skipped files) from files and folders.

    A folder is searched recursively for files an exporter recognises; hidden files and
    ONNX external-data files are left out, other files are listed as skipped.  A file
    named explicitly is always audited, so an unknown format shows up as an error row.
    """
    from exporters import recognised
    from verifier.graph.onnx_file import external_data_files

    suspects, skipped = [], []
    for given in map(Path, inputs):
        if given.is_file() or (given.is_dir() and recognised(given)):  # a folder can be a model (SavedModel)
            suspects.append((given, given.name))
        elif given.is_dir():
            files = list(_entries(given, recognised))
            external = {data for path in files if path.suffix.lower() == ".onnx" and _real(path) is not None
                        for data in external_data_files(path)}
            for path in files:
                if _real(path) in external:
                    continue
                (suspects.append((path, str(path.relative_to(given)))) if recognised(path)
                 else skipped.append(str(path)))
        else:
            raise InputError(f"{given}: no such suspect file or folder")
    if not suspects:
        raise InputError(f"no model files found in {', '.join(map(str, inputs)) or 'the given inputs'}")
    return suspects, skipped


# -- one suspect (runs in a worker) ------------------------------------------------------

@dataclass
class Worker:
    """What a worker process keeps between suspects: the owners (probes computed once) and the cache."""

    owners: tuple[Owner, ...]
    cache: Cache
    threads: int

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
        from exporters import detect
        from exporters.base import source_digest
        from verifier.graph.onnx_file import external_data_files

        started = time.perf_counter()
        try:
            digest = source_digest(path)
            framework = detect(path).name
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
        from exporters import detect
        from exporters.base import source_digest
        from verifier.graph.model import load_model
        from verifier.method.verification import suspect_sketch

        known["sha256"] = source_digest(path)
        exporter = detect(path)
        known["format"] = exporter.name
        onnx_path, record, cached = path, None, False
        if exporter.name != "onnx":
            onnx_path, record, cached = self._export(path, known["sha256"], exporter.name)
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
        from exporters import ExportRequest, export
        from exporters.base import quiet_framework
        from verifier.graph.onnx_file import sha256_file

        entry = _export_key(digest, framework)
        target = self.cache.export_path(entry)
        record = self.cache.read_export(entry)
        if record is not None:
            return target, record, True
        with quiet_framework():
            result = export(ExportRequest(source=path, output=target), framework)
        record = {**result.to_dict(), "output": None, "onnx_sha256": sha256_file(target)}
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


def _start_worker(owner_paths: list[Path], cache_root: Path, threads: int) -> None:
    """Worker process initialiser: cap every framework's threads, keep stdout clean, load the owners once."""
    global _WORKER
    prepare_worker_process(threads)
    _WORKER = Worker(load_owners(owner_paths), Cache(cache_root), threads)


def _audit_in_worker(suspect: AuditInput) -> AuditRow:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.audit_one(suspect)


# -- the run ------------------------------------------------------------------------------

def available_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(owners: tuple[Owner, ...], inputs: Sequence[Path], cache_root: Path, jobs: int | None = None,
        threads: int | None = None, on_row: Callable[[AuditRow, int, int], None] | None = None,
        on_start: Callable[[int], None] | None = None, endpoints: Sequence[EndpointSpec] = (),
        engine: Engine = "local", address: str | None = None) -> AuditResult:
    """Audit every suspect in `inputs`, then every endpoint in `endpoints`, against every owner.

    `jobs`: worker processes (default: as many as fit, ``cores // threads``); `threads`: onnxruntime
    and framework threads per worker (default: the largest thread count the owners recorded).
    `on_start(total)` is called once the suspects are known, `on_row(row, done, total)` as each finishes.
    `engine`: ``local`` (a process pool on this machine) or ``ray`` (one Ray task per suspect, see
    :mod:`verifier.auditing.ray_engine`; `address`: the cluster to join, default a local Ray instance or $RAY_ADDRESS).
    A file whose every verdict is already in the cache is answered here (:meth:`Worker.lookup`), without a
    worker; only the others go to the engine, largest first (see :func:`_size`).
    """
    check_engine(engine, address)
    if engine == "ray":
        from verifier.auditing.ray_engine import import_ray

        import_ray()  # without the extra, say so before any work
    started = time.perf_counter()
    files, skipped = discover(inputs) if inputs or not endpoints else ([], [])
    suspects: list[AuditInput] = [*files, *endpoints]
    threads = threads or max(owner.fingerprint.settings.threads for owner in owners)
    if on_start:
        on_start(len(suspects))
    rows: dict[int, AuditRow] = {}

    def finished(index: int, row: AuditRow) -> None:
        rows[index] = row
        if on_row:
            on_row(row, len(rows), len(suspects))

    driver = Worker(owners, Cache(cache_root), threads)
    for index, suspect in enumerate(suspects):  # what the cache already knows needs no worker
        found = None if isinstance(suspect, EndpointSpec) else driver.lookup(*suspect)
        if found is not None:
            finished(index, found)
    waiting = sorted((index for index in range(len(suspects)) if index not in rows),
                     key=lambda index: -_size(suspects[index]))
    queued = [suspects[index] for index in waiting]

    def finished_queued(position: int, row: AuditRow) -> None:
        finished(waiting[position], row)

    if engine == "ray" and queued:
        from verifier.auditing.ray_engine import run_on_ray

        jobs = run_on_ray(owners, queued, cache_root, threads, jobs, finished_queued, address)
    else:
        jobs = max(1, min(jobs or available_cores() // threads, len(queued)))
        _run_local(owners, queued, cache_root, threads, jobs, finished_queued)
    return AuditResult(created=datetime.now(UTC).isoformat(timespec="seconds"), owners=owners,
                       rows=tuple(rows[index] for index in range(len(suspects))), skipped=tuple(skipped), jobs=jobs,
                       threads=threads, cache=str(cache_root), seconds=round(time.perf_counter() - started, 3),
                       engine=engine)


def _size(suspect: AuditInput) -> int:
    """Bytes of a suspect's file(s): how the queue guesses its cost.  Workers take the largest first, so the
    small ones fill the gaps at the end instead of one large model running alone (longest processing time
    first); endpoints, whose cost is the server's, go last."""
    if isinstance(suspect, EndpointSpec):
        return -1
    path = suspect[0]
    try:
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) if path.is_dir() \
            else path.stat().st_size
    except OSError:  # gone or unreadable: its worker reports why
        return 0


def check_engine(engine: str, address: str | None) -> None:
    """An engine from ENGINES; an address only for Ray."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if address is not None and engine != "ray":
        raise InputError("--address names a Ray cluster: it needs --engine ray")


def worker_failed(suspect: AuditInput, exc: BaseException) -> AuditRow:
    """The error row of a suspect whose worker died (a native crash, a lost node) or whose task failed."""
    path, name = (suspect.url, suspect.name) if isinstance(suspect, EndpointSpec) else suspect
    return AuditRow(path=str(path), name=name, verdict="error", seconds=0.0,
                    error=f"worker failed: {type(exc).__name__}: {first_line(exc)}")


def _run_local(owners: tuple[Owner, ...], suspects: Sequence[AuditInput], cache_root: Path, threads: int, jobs: int,
               finished: Callable[[int, AuditRow], None]) -> None:
    """The local engine: this process for one job, else a pool of `jobs` spawned worker processes."""
    if not suspects:
        return
    if jobs == 1:
        worker = Worker(owners, Cache(cache_root), threads)
        for index, suspect in enumerate(suspects):
            finished(index, worker.audit_one(suspect))
        return
    context = multiprocessing.get_context("spawn")  # frameworks' threads do not survive fork
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                                                initargs=([o.path for o in owners], cache_root, threads)) as pool:
        futures = {pool.submit(_audit_in_worker, suspect): index for index, suspect in enumerate(suspects)}
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # a worker killed by a native crash
                row = worker_failed(suspects[index], exc)
            finished(index, row)


def table(result: AuditResult) -> str:
    """The summary table people read: one line per suspect, then the counts."""
    header = ("suspect", "format", "best owner", "evidence", "score", "p-value", "verdict", "time", "note")
    lines = []
    for row in result.rows:
        best = row.best
        evidence = (best.decided_by or "none significant") if best and best.evidence else "-"
        lines.append((row.name, row.format or "?", best.owner if best else "-", evidence,
                      f"{best.score:.3f}" if best and best.score is not None else "-",
                      format_p(best.p_value) if best and best.p_value is not None else "-", row.verdict,
                      f"{row.seconds:.1f}s", (row.message or "")[:100] if row.verdict in ("error", "incomparable")
                      else ""))
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    text = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in (header, *lines)]
    counts = ", ".join(f"{count} {outcome}" for outcome, count in result.counts().items())
    workers = f"{result.jobs} Ray task(s) at once" if result.engine == "ray" else f"{result.jobs} worker(s)"
    text.append(f"{len(result.rows)} suspects against {len(result.owners)} owner(s): {counts} "
                f"({result.seconds:.1f} s, {workers} x {result.threads} thread(s))")
    return "\n".join(text)
