"""Measure the weight-lineage null on real models, and establish which of them are related.

Run: python -m models.weight_null [--third-party ../shared/third_party] [--work DIR] [--write] [--linear-attacks]

Every model in the third-party folder that exports is exported to ONNX (kept in --work, so a
rerun only compares) and sketched (:mod:`verifier.method.weights`).  Every ordered pair of distinct
files is scored.  Pairs above RELATED_SCORE are related: the files share kernels (copies,
re-saves, conversions, pruned or re-parameterised derivatives); they are grouped transitively
into families and printed, so the lineage is written down from the weights and can be checked
against the files' provenance.  The scores of all pairs from different families are the null:
``--write`` stores them in ``verifier/nulls/weights.json``, which verifier fits at run time.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from verifier.errors import VerifierError
from verifier.method import weights
from verifier.method.calibration import NULLS

#: Pairs scoring above this share kernels.  Independent pairs measured here stay below 0.14 and
#: the weakest copy in the model zoo (60% of the weights pruned) scores about 0.8 (0.5 for the window
#: transformer, whose lineage its linear layers carry).
RELATED_SCORE = 0.3
NULL_FILE = NULLS / "weights.json"


def safe_name(name: str) -> str:
    """A third-party model's name ('folder/file.pth') as the file name the benchmarks keep its export and
    fingerprint under ('folder_file.pth')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def export_all(third_party: Path, work: Path) -> dict[str, Path]:
    """ONNX files of every exportable model, by path relative to `third_party` (exports kept in `work`)."""
    from exporters import ExportRequest, export, recognised
    from exporters.base import quiet_framework
    from verifier.auditing.discovery import discover

    work.mkdir(parents=True, exist_ok=True)
    found, _ = discover([third_party], recognised)
    exported = {}
    for path, name in found:
        target = work / (safe_name(name) + ".onnx")
        failed = target.with_suffix(".failed")
        if not target.exists() and not failed.exists():
            try:
                with quiet_framework():
                    export(ExportRequest(source=path, output=target))
            except (VerifierError, RuntimeError, ValueError, OSError) as exc:
                failed.write_text(f"{type(exc).__name__}: {exc}\n")
                print(f"not exported: {name}: {str(exc).splitlines()[0][:120]}", flush=True)
        if target.exists():
            exported[name] = target
    return exported


def state_dict_layers(path: Path) -> list[np.ndarray]:
    """4-D (convolution) and 2-D (linear) float tensors of a torch state_dict in stored order, for files no
    exporter has an architecture for.

    The weight sketch needs only the layers' weights, not the network: challenge submissions of unknown
    architectures (transformers among them) can still be compared.  Read with weights_only=True (no code runs).
    """
    import torch

    loaded = torch.load(path, map_location="cpu", weights_only=True)
    while isinstance(loaded, dict) and len(loaded) and not any(torch.is_tensor(v) for v in loaded.values()):
        nested = [v for k, v in loaded.items() if isinstance(v, dict) and k in ("params_ema", "params", "state_dict",
                                                                                 "model", "net")]
        if not nested:
            break
        loaded = nested[0]
    if not isinstance(loaded, dict):
        return []
    return [value.float().numpy() for value in loaded.values()
            if torch.is_tensor(value) and value.ndim in (2, 4) and value.is_floating_point()]


def linear_layers_only(sketch: weights.WeightSketch) -> weights.WeightSketch:
    """The linear layers of a sketch (kernel key (0, g)), to measure what they carry on their own."""
    kept = [(layer, kernel) for layer, kernel in zip(sketch.layers, sketch.kernels, strict=True)
            if weights.is_linear(kernel)]
    return weights.WeightSketch(tuple(layer for layer, _ in kept), tuple(kernel for _, kernel in kept))


def attacked_linear_scores(tensors: list[np.ndarray]) -> dict[str, float]:
    """Weight-level attacks (models.attacks' pruning and weight noise, and an fp16 round trip) on the linear
    layers of a real state_dict, scored against the original on linear layers alone: real trained transformers
    need no architecture for this, only their weight matrices."""
    import torch

    from models.attacks import prune, weight_noise

    bag = torch.nn.ModuleList()
    for tensor in tensors:
        if tensor.ndim == 2:
            layer = torch.nn.Linear(tensor.shape[1], tensor.shape[0], bias=False)
            layer.weight.data = torch.from_numpy(tensor.copy())
            bag.append(layer)
    owner = linear_layers_only(weights.sketch_weights([layer.weight.detach().numpy() for layer in bag]))
    attacked = {"fp16": [layer.weight.detach().half().float().numpy() for layer in bag]}
    for name, net in (("prune 30%", prune(bag, 0.3)), ("prune 60%", prune(bag, 0.6)),
                      ("noise 1%", weight_noise(bag, 0.01, 0)), ("noise 5%", weight_noise(bag, 0.05, 0))):
        attacked[name] = [layer.weight.detach().numpy() for layer in net]
    return {name: weights.compare(owner, weights.sketch_weights(found)).score for name, found in attacked.items()}


def families(names: list[str], scores: dict[tuple[str, str], float]) -> list[list[str]]:
    """Groups of files linked (transitively) by a pair scoring above RELATED_SCORE in either direction."""
    parent = {name: name for name in names}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for (a, b), value in scores.items():
        if value > RELATED_SCORE:
            parent[root(a)] = root(b)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(root(name), []).append(name)
    return sorted((sorted(group) for group in groups.values()), key=lambda group: group[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--third-party", type=Path, default=Path("../shared/third_party"))
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "verifier" / "third_party_onnx")
    parser.add_argument("--write", action="store_true", help=f"write the null to {NULL_FILE}")
    parser.add_argument("--linear-attacks", action="store_true",
                        help="also score weight-level attacks on the linear layers of every state_dict that has some")
    args = parser.parse_args()
    from verifier.graph.onnx_file import read_onnx

    exported = export_all(args.third_party, args.work)
    sketches = {name: weights.sketch(read_onnx(path)[0]) for name, path in sorted(exported.items())}
    for path in sorted(args.third_party.rglob("*")):
        name = str(path.relative_to(args.third_party))
        if path.suffix in (".pth", ".pt", ".pkl") and name not in sketches:
            try:
                tensors = state_dict_layers(path)
            except Exception as exc:  # pickled modules and the like: not loadable without running code
                print(f"not read as a state_dict: {name}: {type(exc).__name__}", flush=True)
                continue
            sketches[name] = weights.sketch_weights(tensors)
            if args.linear_attacks and len(linear_layers_only(sketches[name])):
                scores = attacked_linear_scores(tensors)
                print(f"linear layers of {name}, attacked copy scores: "
                      + ", ".join(f"{attack} {value:.2f}" for attack, value in scores.items()), flush=True)
    sketched = [name for name, found in sketches.items() if len(found)]
    print(f"{len(exported)} models exported, {len(sketched)} with sketchable layers")
    started = time.perf_counter()
    scores = {(a, b): weights.compare(sketches[a], sketches[b]).score for a in sketched for b in sketched if a != b}
    seconds = (time.perf_counter() - started) / max(len(scores), 1)
    groups = families(sketched, scores)
    family = {name: index for index, group in enumerate(groups) for name in group}
    null = sorted(value for (a, b), value in scores.items() if family[a] != family[b])
    related = {pair: value for pair, value in scores.items() if family[pair[0]] == family[pair[1]]}
    print(f"{len(scores)} ordered pairs, {seconds * 1000:.1f} ms per comparison")
    print(f"null: {len(null)} pairs from different families: mean {np.mean(null):.4f}, std {np.std(null, ddof=1):.4f}, "
          f"max {max(null):.4f}")
    print("\nfamilies sharing kernels (score of each related ordered pair):")
    for group in groups:
        if len(group) > 1:
            print(" - " + ", ".join(group))
            for (a, b), value in sorted(related.items()):
                if a in group and a < b:
                    print(f"     {a} -> {b}: {value:.2f} (reverse {related[(b, a)]:.2f})")
    if args.write:
        NULL_FILE.write_text(json.dumps({
            "made_by": "python -m models.weight_null --write",
            "related_score": RELATED_SCORE,
            "models": len(sketched),
            "families": [group for group in groups if len(group) > 1],
            "scores": [round(value, 5) for value in null],
        }, indent=1) + "\n")
        print(f"wrote {NULL_FILE}")


if __name__ == "__main__":
    main()
