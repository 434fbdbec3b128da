"""Running an audit: the suspects answered from the cache, the rest on an engine (local processes or Ray).

Each worker uses `threads` intra-op threads (default: the owners' recorded thread count, so verdicts match
``verifier verify``), and there are at most ``cores // threads`` local workers, so the machine is never
oversubscribed.  Anything that goes wrong with one suspect is that row's error, never the audit's.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from verifier.auditing.cache import Cache
from verifier.auditing.convert import Converter
from verifier.auditing.discovery import discover
from verifier.auditing.results import ENGINES, AuditResult, AuditRow, Engine, Owner
from verifier.auditing.worker import (
    AuditInput,
    Worker,
    audit_in_worker,
    available_cores,
    start_worker,
    worker_failed,
)
from verifier.errors import InputError
from verifier.remote.endpoint import EndpointSpec


def run(owners: tuple[Owner, ...], inputs: Sequence[Path], cache_root: Path, converter: Converter,
        jobs: int | None = None, threads: int | None = None,
        on_row: Callable[[AuditRow, int, int], None] | None = None,
        on_start: Callable[[int], None] | None = None, endpoints: Sequence[EndpointSpec] = (),
        engine: Engine = "local", address: str | None = None) -> AuditResult:
    """Audit every suspect in `inputs`, then every endpoint in `endpoints`, against every owner.

    `converter` recognises model files and exports them (the API passes the exporters); `jobs`: worker
    processes (default: as many as fit, ``cores // threads``); `threads`: onnxruntime and framework threads per
    worker (default: the largest thread count the owners recorded).
    `on_start(total)` is called once the suspects are known, `on_row(row, done, total)` as each finishes.
    `engine`: ``local`` (a process pool on this machine) or ``ray`` (one Ray task per suspect, see
    :mod:`verifier.auditing.ray_engine`; `address`: the cluster to join, default a local Ray instance or
    $RAY_ADDRESS).
    A file whose every verdict is already in the cache is answered here (:meth:`Worker.lookup`), without a
    worker; only the others go to the engine, largest first (see :func:`_size`).
    """
    check_engine(engine, address)
    if engine == "ray":
        from verifier.auditing.ray_engine import import_ray

        import_ray()  # without the extra, say so before any work
    started = time.perf_counter()
    files, skipped = discover(inputs, converter.recognised) if inputs or not endpoints else ([], [])
    suspects: list[AuditInput] = [*files, *endpoints]
    threads = threads or max(owner.fingerprint.settings.threads for owner in owners)
    if on_start:
        on_start(len(suspects))
    rows: dict[int, AuditRow] = {}

    def finished(index: int, row: AuditRow) -> None:
        rows[index] = row
        if on_row:
            on_row(row, len(rows), len(suspects))

    driver = Worker(owners, Cache(cache_root), threads, converter)
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

        jobs = run_on_ray(owners, queued, cache_root, threads, jobs, finished_queued, converter, address)
    else:
        jobs = max(1, min(jobs or available_cores() // threads, len(queued)))
        _run_local(driver, queued, jobs, finished_queued)
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


def _run_local(driver: Worker, suspects: Sequence[AuditInput], jobs: int,
               finished: Callable[[int, AuditRow], None]) -> None:
    """The local engine: `driver` (this process's worker) for one job, else a pool of `jobs` spawned worker
    processes made like it."""
    if not suspects:
        return
    if jobs == 1:
        for index, suspect in enumerate(suspects):
            finished(index, driver.audit_one(suspect))
        return
    context = multiprocessing.get_context("spawn")  # frameworks' threads do not survive fork
    initargs = ([owner.path for owner in driver.owners], driver.cache.root, driver.threads, driver.converter)
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=start_worker,
                                                initargs=initargs) as pool:
        futures = {pool.submit(audit_in_worker, suspect): index for index, suspect in enumerate(suspects)}
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # a worker killed by a native crash
                row = worker_failed(suspects[index], exc)
            finished(index, row)

