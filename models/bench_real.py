"""Real-model benchmark: real owners, the copies a thief would make of them, real independent models as negatives.

Run: python -m models.bench_real [--third-party ../shared/third_party] [--work DIR] [--owners NAME ...]
                                 [--steps N] [--distill-steps N] [--out models/benchmark_results/real]

Owners are pretrained models of other authors from the third-party folder (OWNERS).  For each,
attacked copies are made here from its weights (fine-tuning on other images and another noise
level, magnitude pruning 30/60% with and without fine-tuning, weight noise, hidden-channel
permutation, the average of two fine-tunes, int8 QDQ and fp16, an output wrapper, distillation
into the owner's architecture and into another one), plus every third-party file of the owner's
weight family (re-saves and conversions by their authors, established in
``verifier/nulls/weights.json``).  Negatives are every other exported third-party model of the
same I/O.  Each owner is fingerprinted with default options (bundled references) and every
suspect verified as ``verifier verify`` would.

Distilled students are trained for ``--distill-steps`` (1500, batch 16) with the owner as teacher: fewer (the
160 steps used before) left them near their inputs' PSNR, failed attacks rather than students.  Every
suspect's PSNR on the held-out images is recorded beside its owner's.

Verdicts are reported as shipped and with the owner's own pairs held out of the behavioural
strong-model null (``models.behaviour_null`` measured it on the same negatives; holding them
out is the honest measure of its false-positive rate).  Writes pairs.json (every pair's weight
comparison, behavioural z and seconds) and results.md; ``--rescore`` decides again from pairs.json.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.attacks import prune, quantize_int8, range_wrapper, to_fp16, weight_noise
from models.behaviour_null import owner_fingerprint
from models.torch_archs import ESPCN, DnCNN
from models.training import Task, export_onnx, psnr, train
from models.weight_null import export_all, safe_name
from models.zoo_verdicts import UNIT
from verifier.errors import VerifierError
from verifier.graph.model import Model
from verifier.method import weights
from verifier.method.behaviour import evidence as behaviour_evidence
from verifier.method.calibration import NULLS, MeasuredNull
from verifier.method.evidence import decide, share

#: Owners: third-party file -> the task it was trained for (our degradations stand in for the authors' data).
OWNERS: dict[str, Task] = {
    "cszn_KAIR/dncnn_25.pth": Task("noise", 1, sigma=25 / 255),
    "SaoYan_DnCNN-PyTorch/DnCNN-S-15_net.pth": Task("noise", 1, sigma=15 / 255),
    "Zheng222_IMDN/IMDN_x4.pth": Task("downsample", 3, scale=4),
    "zhaohengyuan1_PAN/PANx2_DF2K.pth": Task("downsample", 3, scale=2),
    "Nhat-Thanh_ESPCN-Pytorch/ESPCN-x3.pt": Task("downsample", 3, scale=3),
    "yjn870_FSRCNN-pytorch/fsrcnn_x3.pth": Task("downsample", 1, scale=3),
}
FPR = 0.01


@dataclass(frozen=True)
class Suspect:
    """One model verified against an owner."""

    name: str
    path: Path
    family: str  # attack family, 'third-party copy', or 'independent (real)'
    positive: bool


def load_module(path: Path) -> torch.nn.Module:
    """The owner's weights in our torch definition of its architecture (as the torch exporter builds it)."""
    from exporters.base import ExportRequest
    from exporters.torch_exporter import build_module, load_weights

    loaded = load_weights(torch, path, trust_pickle=False)
    module, _ = build_module(torch, loaded, ExportRequest(source=path, output=path.with_suffix(".onnx")))
    return module


def export_module(module: torch.nn.Module, owner: Path, channels: int, target: Path) -> Path:
    """Export an attacked copy as the torch exporter would (its metadata; no equivalence check: an attack may
    break a model, e.g. PAN with 60% of its weights pruned outputs 1e14, and a broken copy is still a copy)."""
    from exporters.base import ExportRequest
    from exporters.torch_exporter import export_module as export

    export(torch, module.eval(), (channels, 32, 32), ExportRequest(source=owner, output=target, check=False), target,
           "torch", "attacked copy")
    return target


def permuted(module: torch.nn.Module, seed: int) -> torch.nn.Module | None:
    """Hidden channels of a plain conv-(BN)-ReLU stack (DnCNN) permuted: same function, shuffled weights."""
    body = getattr(module, "body", None)
    if not isinstance(body, torch.nn.Sequential):
        return None
    copied = copy.deepcopy(module)
    layers = list(copied.body)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.Conv2d)]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for first, second in itertools.pairwise(convs):
            order = torch.randperm(layers[first].out_channels, generator=generator)
            for layer in layers[first:second]:
                for name in ("weight", "bias", "running_mean", "running_var"):
                    tensor = getattr(layer, name, None)
                    if tensor is not None and tensor.ndim >= 1 and tensor.shape[0] == len(order):
                        tensor.copy_(tensor[order])
            layers[second].weight.copy_(layers[second].weight[:, order])
    return copied


def averaged(a: torch.nn.Module, b: torch.nn.Module) -> torch.nn.Module:
    """The mean of two fine-tunes' weights (model soup)."""
    merged = copy.deepcopy(a)
    other = b.state_dict()
    merged.load_state_dict({key: (value + other[key]) / 2 if value.is_floating_point() else value
                            for key, value in a.state_dict().items()})
    return merged


def reinitialised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The owner's architecture with fresh weights (the student of a same-architecture distillation)."""
    fresh = copy.deepcopy(module)
    torch.manual_seed(seed)
    for layer in fresh.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    return fresh


def other_architecture(task: Task) -> torch.nn.Module:
    """A small student of another architecture for the task."""
    if task.kind == "downsample":
        return ESPCN(scale=task.scale, channels=task.channels, width=32)
    return DnCNN(channels=task.channels, depth=8, width=32)


def attacks(owner_path: Path, task: Task, folder: Path, steps: int, distill_steps: int) -> list[Suspect]:
    """Make (or reuse: files are kept by name, so delete them after changing a recipe) the attacked copies of
    one owner."""
    folder.mkdir(parents=True, exist_ok=True)
    owner = load_module(owner_path)
    c = task.channels
    other_task = Task("noise", c, sigma=min(task.sigma * 2, 50 / 255)) if task.kind == "noise" else task
    made: list[Suspect] = []

    def add(name: str, family: str, make) -> None:
        target = folder / f"{name}.onnx"
        if not target.exists():
            started = time.perf_counter()
            result = make(target)
            if result is None:
                return
            print(f"  made {name} ({time.perf_counter() - started:.0f} s)", flush=True)
        made.append(Suspect(name, target, family, True))

    def torch_copy(build):
        def make(target: Path):
            module = build()
            return None if module is None else export_module(module, owner_path, c, target)
        return make

    def finetune(image_set: str, on: Task, seed: int) -> torch.nn.Module:
        return train(copy.deepcopy(owner), on, image_set, steps, seed=seed, lr=1e-4, batch=8, patch=48)

    fine = {}

    def tuned(key: str, image_set: str, on: Task, seed: int):
        if key not in fine:
            fine[key] = finetune(image_set, on, seed)
        return fine[key]

    add("finetune_other_images", "finetune", torch_copy(lambda: tuned("b", "b", task, 1)))
    if task.kind == "noise":
        add("finetune_other_noise", "finetune", torch_copy(lambda: tuned("task", "a", other_task, 2)))
    add("average_two_finetunes", "average", torch_copy(lambda: averaged(tuned("b", "b", task, 1),
                                                                        tuned("a", "a", other_task, 3))))
    for fraction in (0.3, 0.6):
        percent = int(fraction * 100)
        add(f"prune_{percent}", "prune", torch_copy(lambda f=fraction: prune(owner, f)))
        add(f"prune_{percent}_finetuned", "prune", torch_copy(
            lambda f=fraction: train(prune(owner, f), task, "b", steps, seed=4, lr=1e-4, batch=8, patch=48)))
    for relative in (0.01, 0.05):
        add(f"noise_{int(relative * 100)}pct", "noise", torch_copy(lambda r=relative: weight_noise(owner, r, 5)))
    add("permute_hidden_channels", "permute", torch_copy(lambda: permuted(owner, 6)))
    plain = folder / "plain.onnx"
    if not plain.exists():
        export_module(owner, owner_path, c, plain)
    add("quantize_int8", "quantize", lambda target: quantize_int8(plain, target, task, 7))
    add("quantize_fp16", "quantize", lambda target: to_fp16(plain, target))
    add("wrapper_range255", "wrapper", lambda target: range_wrapper(plain, target))
    add("distill_same_architecture", "distill", torch_copy(
        lambda: train(reinitialised(owner, 8), task, "a", distill_steps, seed=8, batch=16, patch=48, teacher=owner)))
    add("distill_other_architecture", "distill", lambda target: export_onnx(
        train(other_architecture(task), task, "a", distill_steps, seed=9, batch=16, patch=48, teacher=owner), c,
        target))
    return made


def _strong_null_without(owner: str | None) -> MeasuredNull | None:
    """The behavioural strong-model null fitted without `owner`'s own pairs (None: the shipped one, all pairs)."""
    from verifier.method.behaviour import MIN_STRONG_NULL_STD

    path = NULLS / "behaviour-response.json"
    if not path.is_file():
        return None
    pairs = json.loads(path.read_text())["pairs"]
    return MeasuredNull.fit([z for o, _, z in pairs if o != owner], MIN_STRONG_NULL_STD)


def decide_pair(row: dict, strong: MeasuredNull | None) -> str:
    """The verdict `verifier verify` gives a pair, from its recorded weight comparison and behavioural z."""
    pieces = []
    if row["weights"] is not None:
        pieces.append(weights.judged(weights.WeightComparison(*row["weights"]), share(FPR, 2)))
    pieces.append(behaviour_evidence(UNIT, row["behaviour_z"], "response", share(FPR, len(pieces) + 1), strong))
    return decide(pieces)[0]


def held_out_psnr(model: Model, task: Task) -> float:
    """PSNR (dB) of an ONNX model on the held-out images under the owner's task: how well an attack kept (or a
    student learnt) the owner's function, and how strong a negative is."""
    return psnr(lambda x: torch.from_numpy(model.restore(x.numpy())), task)


def measure(owners: list[str], third_party: Path, work: Path, steps: int, distill_steps: int) -> list[dict]:
    """Every (owner, suspect) pair's weight comparison, behavioural z and seconds."""
    from verifier import load_model
    from verifier.method.fingerprint import evidence, io_summary, score_evidence
    from verifier.method.verification import suspect_sketch

    exported = export_all(third_party, work)
    recorded = json.loads((NULLS / "weights.json").read_text()).get("families", [])
    family_of = {name: index for index, group in enumerate(recorded) for name in group}
    rows = []
    for owner_name in owners:
        task, owner_path = OWNERS[owner_name], third_party / owner_name
        print(f"owner {owner_name}", flush=True)
        safe = safe_name(owner_name)
        suspects = attacks(owner_path, task, work / "attacks" / safe, steps, distill_steps)
        owner_model = load_model(exported[owner_name], threads=2)
        owner_psnr = round(held_out_psnr(owner_model, task), 2)
        shape = (*io_summary(owner_model).values(), owner_model.io.height, owner_model.io.width)
        for name, path in sorted(exported.items()):
            if name == owner_name:
                continue
            model = load_model(path, threads=2)
            if (*io_summary(model).values(), model.io.height, model.io.width) != shape:
                continue
            related = name in family_of and family_of.get(owner_name) == family_of[name]
            suspects.append(Suspect(name, path, "third-party copy" if related else "independent (real)", related))
        fp_path = work / "fingerprints" / f"{safe}.vfp"  # shared with models.behaviour_null
        fp_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        fp = owner_fingerprint(owner_model, fp_path)
        fingerprint_seconds = time.perf_counter() - started
        for suspect in suspects:
            row = {"owner": owner_name, "suspect": suspect.name, "family": suspect.family,
                   "positive": suspect.positive, "fingerprint_seconds": round(fingerprint_seconds, 1),
                   "owner_psnr": owner_psnr}
            started = time.perf_counter()
            try:
                model = load_model(suspect.path, threads=2)
                lineage = suspect_sketch(model)
                found = weights.compare(fp.weights, lineage) if lineage is not None and len(fp.weights) else None
                z = fp.calibration.z(score_evidence(fp, evidence(fp, model)))
                row["psnr"] = round(held_out_psnr(model, task), 2)
            except VerifierError as exc:
                rows.append({**row, "error": str(exc)})
                print(f"  {suspect.name:60s} error: {exc}", flush=True)
                continue
            rows.append({**row, "weights": None if found is None else [found.score, found.aligned_layers,
                                                                        found.owner_layers],
                         "behaviour_z": z, "seconds": round(time.perf_counter() - started, 3)})
            print(f"  {suspect.name:60s} {suspect.family:22s} w {found and round(found.score, 3)} z {z:.2f}",
                  flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--third-party", type=Path, default=Path("../shared/third_party"))
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "verifier" / "third_party_onnx")
    parser.add_argument("--owners", nargs="*", default=list(OWNERS))
    parser.add_argument("--steps", type=int, default=80, help="fine-tuning steps")
    parser.add_argument("--distill-steps", type=int, default=1500,
                        help="distillation steps (batch 16): enough for students to learn the owner's function "
                             "(160 left them near their inputs' PSNR, see models/benchmark_results/real/"
                             "distill_probes.md)")
    parser.add_argument("--out", type=Path, default=Path("models/benchmark_results/real"))
    parser.add_argument("--rescore", action="store_true",
                        help="decide again from the recorded pairs (after the nulls changed); no model is run")
    args = parser.parse_args()
    torch.set_num_threads(2)
    path = args.out / "pairs.json"
    if args.rescore:
        rows = json.loads(path.read_text())
    else:
        rows = measure(args.owners, args.third_party, args.work, args.steps, args.distill_steps)
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1) + "\n")
    shipped = _strong_null_without(None)
    for row in rows:
        if "error" in row:
            row["verdict"] = row["held_out_verdict"] = "error"
        else:
            row["verdict"] = decide_pair(row, shipped)
            row["held_out_verdict"] = decide_pair(row, _strong_null_without(row["owner"]))
    write(rows, args.out)


#: The benchmark's stored pairs (``--out``'s default), which the probe studies take their negatives from.
PAIRS = Path(__file__).resolve().parent / "benchmark_results" / "real" / "pairs.json"


def real_negatives(owner: str, pairs: Path = PAIRS) -> list[str]:
    """The third-party models the benchmark scored as real independent negatives of `owner` (pairs that
    failed with an error left out), sorted."""
    rows = json.loads(pairs.read_text())
    return sorted(row["suspect"] for row in rows if row["owner"] == owner and row["family"] == "independent (real)"
                  and "error" not in row)


def write(rows: list[dict], out: Path) -> None:
    """results.json (every pair) and results.md (per attack family, per owner)."""
    out.mkdir(parents=True, exist_ok=True)
    families: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        families[row["family"]].append(row)
    lines = ["| suspects | pairs | derived | similar | independent | error | derived (behavioural null held out) | "
             "similar (held out) |", "|---|---|---|---|---|---|---|---|"]
    for family, members in sorted(families.items(), key=lambda item: (not item[1][0]["positive"], item[0])):
        count = len(members)

        def rate(key: str, outcome: str, group: list[dict] = members) -> str:
            hits = sum(row[key] == outcome for row in group)
            return f"{hits}/{len(group)}"

        lines.append(f"| {family} | {count} | {rate('verdict', 'derived')} | {rate('verdict', 'similar')} | "
                     f"{rate('verdict', 'independent')} | {rate('verdict', 'error')} | "
                     f"{rate('held_out_verdict', 'derived')} | "
                     f"{rate('held_out_verdict', 'similar')} |")
    positives = [row for row in rows if row["positive"]]
    negatives = [row for row in rows if not row["positive"]]
    weights_pos = [row["weights"][0] for row in positives if row.get("weights") is not None]
    weights_neg = [row["weights"][0] for row in negatives if row.get("weights") is not None]
    seconds = float(np.median([row["seconds"] for row in rows if "seconds" in row]))
    top_z = max(row["behaviour_z"] for row in negatives if "behaviour_z" in row)
    students = [row for row in rows if row["family"] == "distill" and "psnr" in row]
    if students:
        lines += ["", "Distilled students, held-out PSNR (dB) against their owner's (a student that did not learn the "
                  "owner's function cannot carry its fingerprint):", "",
                  "| owner | owner | same architecture | other architecture |", "|---|---|---|---|"]
        for owner in sorted({row["owner"] for row in students}):
            mine = {row["suspect"]: row["psnr"] for row in students if row["owner"] == owner}
            first = next(row for row in students if row["owner"] == owner)
            lines.append(f"| {owner} | {first['owner_psnr']} | {mine.get('distill_same_architecture', '-')} | "
                         f"{mine.get('distill_other_architecture', '-')} |")
    lines += ["", f"Weight scores: positives min {min(weights_pos):.3f} (median {np.median(weights_pos):.3f}), "
              f"negatives max {max(weights_neg):.3f}; behaviour z: negatives max "
              f"{top_z:.2f}; verification {seconds:.2f} s median per suspect."]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
