"""Benchmark: wall time of one audit with 1 and 2 workers, on the local engine and on a local Ray instance.

Run: python -m models.bench_audit [--folder models/zoo/dncnn17_gray_s25] [--limit N] [--seeds 4] [--json PATH]

The owner is the folder's ``source.onnx`` (a gray denoiser), fingerprinted once (not timed) at its manifest
noise level against the bundled noise references and the folder's ``ref_seed.onnx``, as in README's audit
example.  Every timed audit starts from an empty cache and uses 1 thread per worker, so "2 workers" is 2
suspects at once on 2 cores; then the 2-worker audit is run again on its filled cache (what a repeated pipeline
run costs).  Each engine is warmed up on two suspects first (timed apart): the driver's imports, and for Ray
`ray.init` (`num_cpus` = the cores this process may use) and its two worker processes with the owner loaded,
which a long-lived cluster keeps; the local engine's 2-worker pool is spawned by every audit, so its start-up
stays in its timings.
Prints a Markdown table.  Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import verifier
from verifier.auditing.results import AuditResult
from verifier.auditing.worker import available_cores

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "models" / "zoo" / "dncnn17_gray_s25"
REFERENCES = ROOT / "verifier" / "reference_models" / "noise-c1-x1"


@dataclass(frozen=True)
class Measurement:
    """One timed audit."""

    engine: str
    workers: int
    threads: int
    suspects: int
    seconds: float
    cached: bool  # run on the cache the previous audit filled

    @property
    def per_suspect(self) -> float:
        return self.seconds / self.suspects


def _sigma(folder: Path) -> float:
    """The noise level the folder's source model was trained for (models/zoo/manifest.json)."""
    manifest = json.loads((ROOT / "models" / "zoo" / "manifest.json").read_text())
    return next(entry["task"]["sigma"] for entry in manifest["models"] if entry["file"] == f"{folder.name}/source.onnx")


def _audit(owner: Path, folder: Path, cache: Path, engine: str, workers: int) -> AuditResult:
    return verifier.audit([owner], [folder], cache=cache, jobs=workers, threads=1, engine=engine)  # type: ignore[arg-type]


def _timed(owner: Path, folder: Path, cache: Path, engine: str, workers: int, cached: bool) -> Measurement:
    started = time.perf_counter()
    result = _audit(owner, folder, cache, engine, workers)
    seconds = time.perf_counter() - started
    errors = [row.name for row in result.rows if row.verdict == "error"]
    if errors:
        raise SystemExit(f"audit failed on {errors}")
    return Measurement(engine, workers, 1, len(result.rows), round(seconds, 2), cached)


def table(measurements: list[Measurement]) -> str:
    """The Markdown table: speed-up against the same engine's 1-worker run, cache cost against its first run."""
    lines = ["| engine | workers x threads | cache | suspects | wall s | s per suspect | vs 1 worker |",
             "|---|---|---|---|---|---|---|"]
    for entry in measurements:
        single = next(m for m in measurements if m.engine == entry.engine and m.workers == 1 and not m.cached)
        first = next(m for m in measurements if m.engine == entry.engine and m.workers == entry.workers
                     and not m.cached)
        relation = (f"{100 * entry.seconds / first.seconds:.0f}% of the empty-cache run" if entry.cached
                    else f"{single.seconds / entry.seconds:.2f}x")
        lines.append(f"| {entry.engine} | {entry.workers} x {entry.threads} | {'filled' if entry.cached else 'empty'}"
                     f" | {entry.suspects} | {entry.seconds:.1f} | {entry.per_suspect:.2f} | {relation} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FOLDER, help="zoo folder with source.onnx and ref_seed.onnx")
    parser.add_argument("--limit", type=int, default=None, help="audit only the first N models of the folder")
    parser.add_argument("--seeds", type=int, default=4, help="probes of the owner fingerprint")
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as scratch:
        work = Path(scratch)
        suspects = work / "suspects"
        suspects.mkdir()
        for path in sorted(args.folder.glob("*.onnx"))[:args.limit]:
            shutil.copy(path, suspects / path.name)
        owner = work / "owner.vfp"
        started = time.perf_counter()
        verifier.fingerprint(args.folder / "source.onnx", [REFERENCES, args.folder / "ref_seed.onnx"],
                             output=owner, seeds=args.seeds, sigma=_sigma(args.folder), threads=1)
        print(f"fingerprint: {time.perf_counter() - started:.1f} s; {len(list(suspects.iterdir()))} suspects; "
              f"{available_cores()} cores")
        measurements: list[Measurement] = []
        warm = work / "warm-up"  # two suspects: one for each worker
        warm.mkdir()
        for path in sorted(suspects.iterdir())[:2]:
            shutil.copy(path, warm / path.name)
        for engine in args.engines:
            started = time.perf_counter()
            if engine == "ray":
                import ray

                ray.init(num_cpus=available_cores(), include_dashboard=False, logging_level="WARNING")
            _audit(owner, warm, work / f"warm-up-{engine}", engine, 2)  # imports here, Ray's workers
            print(f"{engine} warm-up (two suspects{', ray.init' if engine == 'ray' else ''}): "
                  f"{time.perf_counter() - started:.1f} s")
            for workers in (1, 2):
                cache = work / f"cache-{engine}-{workers}"
                measurements.append(_timed(owner, suspects, cache, engine, workers, cached=False))
                print(measurements[-1])
            measurements.append(_timed(owner, suspects, work / f"cache-{engine}-2", engine, 2, cached=True))
            print(measurements[-1])
    print(table(measurements))
    if args.json:
        args.json.write_text(json.dumps([asdict(m) for m in measurements], indent=2) + "\n")


if __name__ == "__main__":
    main()
