"""Benchmark: seconds and gradient evaluations per fingerprint, fast recipe vs the authors' reference.

Run: python -m models.bench_fingerprint [--reference-steps 100] [--threads 2] [--json PATH]

The whole owner side of `verifier fingerprint` (critical images, owner and
reference residuals on the probes, calibration; graph building included) for
a 17-layer 64-channel RGB DnCNN denoiser and an x4 EDSR-style super-resolver
at 128x128, with random weights (timing does not depend on training).  The
reference recipe's 5000 Adam steps take hours per model on 2 cores, so it
runs `--reference-steps` steps per critical image and the table shows the
full run's time projected linearly (marked "projected").  Prints a Markdown table.  Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from models.torch_archs import EDSR, DnCNN, randomise_zero_layers
from models.training import export_onnx
from verifier import load_model
from verifier.method.degradation import Degradation
from verifier.method.fingerprint import DEFAULT_SEEDS, Settings, create
from verifier.method.inversion import RECIPES

MODELS = {
    "DnCNN-17-64 denoiser (sigma 25)": (lambda: DnCNN(channels=3, depth=17, width=64), 1,
                                         Degradation("noise", sigma=25 / 255)),
    "EDSR x4 (16 blocks, 64 ch)": (lambda: EDSR(scale=4, channels=3, width=64, blocks=16), 4,
                                   Degradation("downsample", scale=4)),
}
REFERENCES = 3


def _export(factory, seed: int, path: Path) -> Path:
    torch.manual_seed(seed)
    return export_onnx(randomise_zero_layers(factory()), 3, path)


def bench(reference_steps: int, threads: int, folder: Path) -> list[dict]:
    """One row per (model, recipe)."""
    rows = []
    for name, (factory, scale, degradation) in MODELS.items():
        paths = [_export(factory, seed, folder / f"{scale}_{seed}.onnx") for seed in range(REFERENCES + 1)]
        for recipe_name in ("fast", "reference"):
            recipe = RECIPES[recipe_name]
            run = recipe if recipe_name == "fast" else dataclasses.replace(recipe, evaluations=reference_steps)
            settings = Settings("response", run, degradation, tuple(range(DEFAULT_SEEDS)), threads)
            owner = load_model(paths[0], threads=threads)
            references = [load_model(path, threads=threads) for path in paths[1:]]
            started = time.perf_counter()
            fingerprint = create(owner, references, settings)
            rest = time.perf_counter() - started - fingerprint.cost["seconds"]  # probes, references, calibration
            inversion = fingerprint.cost["seconds"]
            factor = recipe.evaluations / run.evaluations
            rows.append({"model": name, "recipe": recipe_name, "seeds": DEFAULT_SEEDS,
                         "evaluations": fingerprint.cost["evaluations"] * factor,
                         "seconds": inversion * factor + rest, "projected": factor != 1,
                         "ms_per_evaluation": 1e3 * inversion / fingerprint.cost["evaluations"]})
            print(_row(rows[-1]), flush=True)
    return rows


def _row(row: dict) -> str:
    mark = " (projected)" if row["projected"] else ""
    return (f"| {row['model']} | {row['recipe']} | {row['seeds']} | {row['evaluations']:.0f} | "
            f"{row['seconds']:.1f}{mark} | {row['ms_per_evaluation']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print("| model | recipe | critical images | gradient evaluations | seconds per fingerprint | ms per evaluation |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        rows = bench(args.reference_steps, args.threads, Path(folder))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
