"""The shipped verdict (weights + behaviour, see verifier.method.evidence) on every pair of the zoo benchmark.

Run: python -m models.zoo_verdicts [--results models/benchmark_results/results.json]

`python -m models.benchmark` measures the behavioural evidence alone (its z per pair is in
results.json; fingerprints are deterministic, so rerunning it reproduces those numbers).  This
adds the weight evidence (the source's sketch against every suspect file; seconds) and decides
each pair as `verifier verify` does (:func:`verifier.method.verification.gather`): each piece held to
its share of the FPR, behaviour against the fold's reference null and the shipped strong-model
null.  Prints derived / similar / independent per attack family and per kind of negative
(README's zoo verdict table).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from models.build import ZOO
from verifier.graph.onnx_file import read_onnx
from verifier.method import weights
from verifier.method.calibration import Calibration
from verifier.method.evidence import decide
from verifier.method.verification import gather

FPR = 0.01


#: A calibration whose null has mean 0 and standard deviation 1, so that a pair's z is its score.
UNIT = Calibration((-1.0, 0.0, 1.0), ("", "", ""), FPR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("models/benchmark_results/results.json"))
    args = parser.parse_args()
    rows = json.loads(args.results.read_text())["rows"]
    sketches: dict[str, weights.WeightSketch] = {}

    def sketch(model_id: str) -> weights.WeightSketch:
        if model_id not in sketches:
            sketches[model_id] = weights.sketch(read_onnx(ZOO / f"{model_id}.onnx")[0])
        return sketches[model_id]

    counts: dict[tuple[bool, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        pieces = gather(sketch(f"{row['owner']}/source"), sketch(row["suspect"]), UNIT, row["z"], "response")
        counts[(row["positive"], row["family"])][decide(pieces)[0]] += 1
    print("| pairs | kind | n | derived | similar | independent |\n|---|---|---|---|---|---|")
    for (positive, family), found in sorted(counts.items(), key=lambda item: (not item[0][0], item[0][1])):
        total = sum(found.values())
        print(f"| {'positive' if positive else 'negative'} | {family} | {total} | {found['derived']} | "
              f"{found['similar']} | {found['independent']} |")


if __name__ == "__main__":
    main()
