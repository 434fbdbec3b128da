"""The Ray engine of `verifier audit`: one Ray task per suspect, on a local Ray instance or a cluster.

Why its own module: Ray is an optional extra (``pip install 'verifier[ray]'``) and a heavy import, so
nothing imports this module, or Ray, until an audit asks for ``engine="ray"``.

What travels: a task gets the suspect's path (or endpoint spec), the owners' fingerprint paths with their
sha256, the cache folder and the thread count, never a model or a session (onnxruntime sessions cannot be
pickled).  It runs the local engine's per-suspect code (:class:`verifier.auditing.worker.Worker`), so the rows are the
local engine's rows: same verdicts, bit-identical scores at the same thread count.  A Ray worker process keeps
its loaded owners between tasks (:data:`_WORKERS`), as a local pool worker does; a fingerprint whose sha256
differs on the worker from the driver's fails that suspect's row instead of judging it against another owner.

Where it runs: every node must see the suspects, the fingerprints and the cache at the paths the driver uses
(one machine, or a shared filesystem), and each task changes to the driver's working directory, so relative
paths and the messages that quote them read the same as locally.  Workers write the cache themselves; the
rows come back to the driver, which reports them as tasks finish.

Threads: onnxruntime sizes its pools from the machine, not from the task's share of it, so each task asks Ray
for ``num_cpus = threads`` and caps every framework at `threads` itself (:func:`prepare_worker_process`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from verifier.auditing.cache import Cache
from verifier.auditing.convert import Converter
from verifier.auditing.discovery import load_owners
from verifier.auditing.results import AuditRow, Owner
from verifier.auditing.worker import AuditInput, Worker, available_cores, prepare_worker_process, worker_failed
from verifier.errors import InputError

#: A task whose worker died is tried once more (a lost node on a real cluster); a file that crashes its worker
#: every time costs two attempts and then becomes one error row.
RETRIES = 1


@dataclass(frozen=True)
class OwnerFile:
    """An owner as a task receives it: where its fingerprint is, and the digest the driver read there."""

    path: str
    sha256: str


@dataclass(frozen=True)
class TaskContext:
    """Everything a task needs besides its suspect; the same for every task of one audit."""

    owners: tuple[OwnerFile, ...]
    cache_root: str
    threads: int
    cwd: str  # the driver's working directory, so relative paths mean the same on the worker
    converter: Converter  # the exporters, from the API


#: The owners a worker process has loaded, by what they were loaded from (Ray reuses worker processes).
_WORKERS: dict[tuple[tuple[OwnerFile, ...], str, int, Converter], Worker] = {}


def _worker(context: TaskContext) -> Worker:
    """This process's worker for `context`, loading the owners the first time."""
    key = (context.owners, context.cache_root, context.threads, context.converter)
    if key not in _WORKERS:
        loaded = load_owners([Path(owner.path) for owner in context.owners])
        for owner, sent in zip(loaded, context.owners, strict=True):
            if owner.sha256 != sent.sha256:
                raise InputError(f"owner fingerprint {owner.path} on this worker is not the driver's "
                                 f"(sha256 {owner.sha256[:12]}, expected {sent.sha256[:12]})")
        _WORKERS[key] = Worker(loaded, Cache(context.cache_root), context.threads, context.converter)
    return _WORKERS[key]


def audit_task(context: TaskContext, suspect: AuditInput) -> AuditRow:
    """One suspect, run inside a Ray worker (the local engine's per-suspect code)."""
    prepare_worker_process(context.threads)
    if os.path.isdir(context.cwd):
        os.chdir(context.cwd)
    try:
        worker = _worker(context)
    except Exception as exc:  # owners unreadable on this node: this suspect's row says so
        return worker_failed(suspect, exc)
    return worker.audit_one(suspect)


def import_ray() -> ModuleType:
    """The ray module, or an InputError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("the ray engine needs Ray: pip install 'verifier[ray]'") from None
    return ray


def connect(address: str | None) -> ModuleType:
    """Ray, connected to `address` (a cluster: ``auto``, ``HOST:PORT``, ``ray://HOST:10001``), else to
    $RAY_ADDRESS, else to a new local instance sized to this process's cores (no dashboard)."""
    ray = import_ray()
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        options["num_cpus"] = available_cores()
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from None
    return ray


def _failure(ray: ModuleType, exc: BaseException) -> BaseException:
    """What to report for a failed task: the suspect's own exception, not Ray's wrapper around it."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    return cause if isinstance(cause, BaseException) else exc


def run_on_ray(owners: Sequence[Owner], suspects: Sequence[AuditInput], cache_root: Path, threads: int,
               jobs: int | None, finished: Callable[[int, AuditRow], None], converter: Converter,
               address: str | None = None,
               work: Callable[[TaskContext, AuditInput], AuditRow] = audit_task) -> int:
    """Audit `suspects` as Ray tasks of `threads` CPUs each, calling `finished(index, row)` as each completes;
    the number of tasks that could run at once (what the result reports as its jobs).

    `jobs` caps the tasks in flight (default: all are submitted and Ray schedules them as CPUs free up, so a
    cluster that grows is used).  Uses the Ray connection already made in this process, else makes one
    (:func:`connect`) and shuts it down afterwards.  A failed task or a dead worker is that suspect's error row;
    an interrupt (Ctrl-C) cancels every outstanding task and propagates.  `work` is what a task runs (tests
    give one whose worker dies).
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        connect(address)
    try:
        context = TaskContext(tuple(OwnerFile(str(owner.path), owner.sha256) for owner in owners),
                              str(cache_root), threads, os.getcwd(), converter)
        task = ray.remote(work).options(num_cpus=threads, max_retries=RETRIES)
        window = min(jobs or len(suspects), len(suspects))
        waiting = iter(enumerate(suspects))
        pending: dict[Any, int] = {}  # ObjectRef -> suspect index

        def submit() -> None:
            for index, suspect in waiting:
                pending[task.remote(context, suspect)] = index
                if len(pending) >= window:
                    return

        try:
            submit()
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        row = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the task raised, its worker died, it was lost
                        row = worker_failed(suspects[index], _failure(ray, exc))
                    finished(index, row)
                submit()
        except BaseException:  # Ctrl-C (or a failing on_row): no task keeps running for nobody
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        capacity = max(1, int(ray.cluster_resources().get("CPU", threads)) // threads)
        return max(1, min(jobs or capacity, len(suspects)))
    finally:
        if started_here:
            ray.shutdown()
