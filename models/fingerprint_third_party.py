"""Check that every exportable third-party model fingerprints with no options, as a new user would run it.

Run: python -m models.fingerprint_third_party [--third-party ../shared/third_party] [--work DIR]

Each model in the third-party folder that exports (exports shared with :mod:`models.weight_null`,
kept in --work) is fingerprinted by the CLI exactly as README shows it, `verifier fingerprint
MODEL.onnx -o MODEL.vfp`, in its own process.  One JSON line per model (exit code, seconds, the
CLI's last line) is appended to --work/fingerprints.jsonl, so an interrupted run resumes where it
stopped; the Markdown table goes to models/benchmark_results/third_party_fingerprints.md (also when
interrupted, then marked partial; `--report` only rewrites it from the log).  Not a test: it takes about
an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from models.weight_null import export_all

RESULTS = Path(__file__).parent / "benchmark_results" / "third_party_fingerprints.md"


def fingerprint(onnx_path: Path, output: Path) -> dict:
    """Exit code, seconds and the last stdout/stderr line of `verifier fingerprint onnx_path -o output`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "verifier", "fingerprint", str(onnx_path), "-o", str(output)],
                          capture_output=True, text=True)
    lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()  # the summary or the error
    return {"exit_code": done.returncode, "seconds": round(time.perf_counter() - started, 1),
            "last_line": lines[-1] if lines else ""}


def table(results: dict[str, dict], exported: int) -> str:
    """Markdown: one row per model, then the count that fingerprinted (of the `exported` models)."""
    rows = ["| model | exit | seconds | what verifier said |", "|---|---|---|---|"]
    for name, result in sorted(results.items()):
        said = result["last_line"].replace("|", "/")[:160]
        rows.append(f"| {name} | {result['exit_code']} | {result['seconds']} | {said} |")
    passed = sum(result["exit_code"] == 0 for result in results.values())
    done = "" if len(results) >= exported else (f" Partial: {len(results)} of the {exported} exported models were "
                                                 "tried; rerun `python -m models.fingerprint_third_party` to resume.")
    return "\n".join(rows) + f"\n\n{passed}/{len(results)} tried models fingerprinted with no options.{done}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--third-party", type=Path, default=Path("../shared/third_party"))
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "verifier" / "third_party_onnx")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite the table from the log (exports still missing are made first: the table "
                             "counts them)")
    args = parser.parse_args()
    exported = export_all(args.third_party, args.work)
    log = args.work / "fingerprints.jsonl"
    results = {}
    if log.exists():
        results = {entry["name"]: entry for entry in map(json.loads, log.read_text().splitlines())}
    todo = [] if args.report else [(name, path) for name, path in sorted(exported.items()) if name not in results]
    try:
        for name, path in todo:
            results[name] = {"name": name, **fingerprint(path, path.with_suffix(".vfp"))}
            with log.open("a") as handle:
                handle.write(json.dumps(results[name]) + "\n")
            print(f"{name}: exit {results[name]['exit_code']} in {results[name]['seconds']} s", flush=True)
    finally:
        RESULTS.write_text(table(results, len(exported)))
    print(table(results, len(exported)))


if __name__ == "__main__":
    main()
