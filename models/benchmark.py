"""Benchmark: how well fingerprints separate derived from independent models in the zoo.

Run: python -m models.benchmark [--recipes fast reference] [--reference-steps N] [--methods response paper]
                                [--sources ID ...] [--out models/benchmark_results]

For every source model in ``models/zoo/manifest.json`` and every recipe and
method, the source is fingerprinted (calibrated on verifier's bundled reference
models for its task) and every zoo model with the same input/output shape is
verified against it.  Positives are the source's derived models; negatives are
all models not descended from it (its independent suspects, and other sources
of the same I/O with everything derived from them).

Calibration: bundled references for the task plus the source's independently
trained models of its own architecture, rotated leave-one-out (see `run`).
Scores are pooled across sources as z = (score - null mean) / null std, the
quantity the calibrated decision thresholds.  Rows are (fold, suspect) pairs.  Reported: AUC and TPR at 1% FPR
(from the pooled ROC) overall and per attack family, the calibrated decision's
real false-positive and true-positive rates at its nominal 1%, and seconds per
fingerprint and per verification.  Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from models.build import MANIFEST, ZOO
from verifier import Model, load_model
from verifier.method.degradation import Degradation
from verifier.method.fingerprint import DEFAULT_SEEDS, Settings, create, score
from verifier.method.inversion import RECIPES, critical_images
from verifier.method.references import reference_paths

THREADS = 2
FPR = 0.01


def degradation_for(task: dict) -> Degradation:
    """The degradation a zoo model was trained to undo."""
    if task["kind"] == "downsample":
        return Degradation("downsample", scale=task["scale"])
    return Degradation(task["kind"], sigma=task["sigma"])


def auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a positive outscores a negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    pos, neg = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def tpr_at_fpr(positives: list[float], negatives: list[float], fpr: float = FPR) -> float:
    """TPR at the smallest threshold whose FPR on the negatives is at most `fpr`."""
    if not positives or not negatives:
        return float("nan")
    ordered = np.sort(negatives)[::-1]
    allowed = int(np.floor(fpr * len(ordered)))
    threshold = ordered[allowed] if allowed < len(ordered) else -np.inf
    return float((np.asarray(positives) > threshold).mean())


@functools.cache
def _model(path: Path) -> Model:
    """Each zoo or reference model is loaded once per run, however many owners and folds use it."""
    return load_model(path, threads=THREADS)


def _lineage(entry: dict) -> str:
    return entry["source"] if entry["relation"] in ("source", "derived") else entry["id"]


def _io(entry: dict) -> tuple:
    task = entry["task"]
    return task["channels"], task["scale"]


def _same_architecture_pool(owner: dict, entries: list[dict]) -> list[dict]:
    """The source's independently trained models of its own architecture."""
    return [e for e in entries if e["source"] == owner["source"] and e["relation"] in ("independent", "reference")
            and e["architecture"] == owner["architecture"] and e["parent"] is None]


def role(suspect: dict, owner: dict, calibration_ids: set[str]) -> bool | None:
    """True: a positive for `owner` (derived from it); False: a negative; None: not scored.

    Not scored: models of another I/O, the owner itself, its calibration models and their own
    compressed copies (explained away by the calibration), and anything else of the owner's lineage.
    """
    if (suspect["id"] in calibration_ids | {owner["id"]} or suspect["parent"] in calibration_ids
            or _io(suspect) != _io(owner)):
        return None
    if suspect["relation"] == "derived" and suspect["source"] == owner["source"]:
        return True
    return None if _lineage(suspect) == owner["source"] else False


def negative_family(suspect: dict, owner: dict) -> str:
    """How a negative relates to the owner, for the summary's negative rows: an independent model of the
    same or another architecture, that model compressed or rewritten by its own vendor, or another
    source's model or one derived from it."""
    if suspect["relation"] not in ("independent", "reference"):
        return "another source's model or its derivative"
    kind = "same" if suspect["architecture"] == owner["architecture"] else "other"
    return f"independent ({kind} architecture{', compressed/rewritten by its vendor' if suspect['parent'] else ''})"


def _folds(pool: list[dict]) -> list[tuple[dict | None, list[dict]]]:
    """(held-out model, same-architecture references) pairs: leave one out, or no fold if the pool is empty."""
    if not pool:
        return [(None, [])]
    return [(held, [e for e in pool if e is not held]) for held in pool]


def run(recipes: list[str], methods: list[str], reference_steps: int, sources: list[str] | None) -> dict:
    """All pairs for all (recipe, method); returns the JSON-ready results.

    Calibration uses verifier's bundled references for the task plus independently trained
    models of the owner's own architecture (what an owner can train; the design study showed
    that same-architecture independents correlate far more than other architectures).  Those are
    rotated leave-one-out: each is a negative once, calibrated on the others, and every other
    suspect is scored under every fold.
    """
    entries = json.loads(MANIFEST.read_text())["models"]
    owners = [e for e in entries if e["relation"] == "source" and (not sources or e["source"] in sources)]
    rows = []
    timings: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"fingerprint": [], "verify": []})
    for recipe_name in recipes:
        recipe = RECIPES[recipe_name]
        if recipe_name == "reference" and reference_steps < recipe.evaluations:
            recipe = dataclasses.replace(recipe, evaluations=reference_steps)
        for method in methods:
            label = f"{recipe_name}[{recipe.evaluations} steps]/{method}"
            for owner_entry in owners:
                owner = _model(ZOO / owner_entry["file"])
                settings = Settings(method, recipe, degradation_for(owner_entry["task"]),
                                    tuple(range(DEFAULT_SEEDS)), THREADS)
                bundled = [_model(p) for p in reference_paths([], owner.io, settings.degradation)]
                started = time.perf_counter()
                found = critical_images(owner, recipe, settings.degradation, settings.seeds)
                inversion = time.perf_counter() - started
                for held, same_arch in _folds(_same_architecture_pool(owner_entry, entries)):
                    started = time.perf_counter()
                    references = bundled + [_model(ZOO / e["file"]) for e in same_arch]
                    fingerprint = create(owner, references, settings, FPR, found=found)
                    timings[label]["fingerprint"].append(inversion + time.perf_counter() - started)
                    calibration = fingerprint.calibration
                    print(f"{label} {owner_entry['source']} (held out: {held['id'] if held else '-'}): "
                          f"threshold {calibration.threshold:.3f}", flush=True)
                    calibration_ids = {e["id"] for e in same_arch}
                    for suspect_entry in entries:
                        positive = role(suspect_entry, owner_entry, calibration_ids)
                        if positive is None:
                            continue
                        started = time.perf_counter()
                        value = score(fingerprint, _model(ZOO / suspect_entry["file"]))
                        timings[label]["verify"].append(time.perf_counter() - started)
                        family = suspect_entry["attack"] if positive else negative_family(suspect_entry,
                                                                                           owner_entry)
                        rows.append({"setting": label, "owner": owner_entry["source"],
                                     "fold": held["id"] if held else None, "suspect": suspect_entry["id"],
                                     "positive": positive, "family": family, "score": value,
                                     "z": (value - calibration.mean) / calibration.std,
                                     "derived": calibration.verdict(value) == "derived",
                                     "suspect_psnr": suspect_entry["psnr"]})
    return {"rows": rows, "timings": {k: dict(t) for k, t in timings.items()}}


def summarise(results: dict) -> list[dict]:
    """One summary line per (setting, family), plus 'all'."""
    lines = []
    by_setting = defaultdict(list)
    for row in results["rows"]:
        by_setting[row["setting"]].append(row)
    for setting, rows in by_setting.items():
        negatives = [r for r in rows if not r["positive"]]
        families = sorted({r["family"] for r in rows if r["positive"]})
        for family in ["all", *families]:
            positives = [r for r in rows if r["positive"] and family in ("all", r["family"])]
            lines.append(_line(setting, family, positives, negatives, results))
        for family in sorted({r["family"] for r in negatives}):
            lines.append(_line(setting, family, [r for r in rows if r["positive"]],
                               [r for r in negatives if r["family"] == family], results))
    return lines


def _line(setting: str, family: str, positives: list[dict], negatives: list[dict], results: dict) -> dict:
    return {
        "setting": setting, "family": family, "positives": len(positives), "negatives": len(negatives),
        "auc": auc([r["z"] for r in positives], [r["z"] for r in negatives]),
        "tpr_at_1pct_fpr": tpr_at_fpr([r["z"] for r in positives], [r["z"] for r in negatives]),
        "calibrated_tpr": float(np.mean([r["derived"] for r in positives])) if positives else float("nan"),
        "calibrated_fpr": float(np.mean([r["derived"] for r in negatives])) if negatives else float("nan"),
        "seconds_per_fingerprint": float(np.mean(results["timings"][setting]["fingerprint"])),
        "seconds_per_verification": float(np.mean(results["timings"][setting]["verify"])),
    }


def markdown(lines: list[dict]) -> str:
    """The summary as a Markdown table."""
    out = ["| setting | attack family | positives | negatives | AUC | TPR @ 1% FPR (ROC) | calibrated TPR | "
           "calibrated FPR (nominal 1%) | s / fingerprint | s / verification |", "|" + "---|" * 10]
    for line in lines:
        out.append(f"| {line['setting']} | {line['family']} | {line['positives']} | {line['negatives']} | "
                   f"{line['auc']:.3f} | {line['tpr_at_1pct_fpr']:.2f} | {line['calibrated_tpr']:.2f} | "
                   f"{line['calibrated_fpr']:.3f} | {line['seconds_per_fingerprint']:.1f} | "
                   f"{line['seconds_per_verification']:.2f} |")
    return "\n".join(out)


def _merge(parts: list[dict]) -> dict:
    """Concatenate the rows and raw timings of several runs."""
    timings: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"fingerprint": [], "verify": []})
    for part in parts:
        for setting, values in part["timings"].items():
            for name, times in values.items():
                timings[setting][name].extend(times)
    return {"rows": [row for part in parts for row in part["rows"]], "timings": dict(timings)}


def per_attack(results: dict) -> str:
    """Markdown: for each setting and attack (the suspect's file name), derived verdicts / pairs."""
    counts: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for row in results["rows"]:
        name = row["suspect"].split("/", 1)[1] if row["positive"] else f"({row['family']})"
        counts[row["setting"], name].append(row["derived"])
    out = ["| setting | attack | called derived / pairs |", "|---|---|---|"]
    out += [f"| {setting} | {name} | {sum(v)}/{len(v)} |" for (setting, name), v in sorted(counts.items())]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["fast"], choices=sorted(RECIPES))
    parser.add_argument("--methods", nargs="+", default=["response"], choices=["response", "paper"])
    parser.add_argument("--reference-steps", type=int, default=RECIPES["reference"].evaluations,
                        help="cap on the reference recipe's Adam steps (the full 5000 take hours per model)")
    parser.add_argument("--sources", nargs="*", default=None, help="only these source ids")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "benchmark_results")
    parser.add_argument("--merge", nargs="+", type=Path, default=None, metavar="DIR",
                        help="summarise earlier runs' results.json (e.g. one run per group of sources) instead")
    args = parser.parse_args()
    if args.merge:
        results = _merge([json.loads((folder / "results.json").read_text()) for folder in args.merge])
    else:
        results = run(args.recipes, args.methods, args.reference_steps, args.sources)
    lines = summarise(results)
    table = markdown(lines) + "\n\n" + per_attack(results)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({**results, "summary": lines}, indent=1))
    (args.out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
