"""Build the model zoo: sources, derived suspects (attacks), independent suspects, and the manifest.

Run: python -m models.build [--only SOURCE_ID ...] [--list] [--remeasure]

Everything is trained here on CPU from seeds, from scikit-image's sample
images, and written to ``models/zoo/<source>/<id>.onnx`` with one manifest,
``models/zoo/manifest.json`` (id, file, task, architecture, parent, relation,
attack and parameters, held-out PSNR, sha256).  Resumable: an entry whose file
exists and is in the manifest is skipped, and the manifest is rewritten after
every entry.  The reference models that calibrate verdicts are built by
:mod:`models.references` (they are bundled with verifier).
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from models import attacks
from models.torch_archs import EDSR, ESPCN, FSRCNN, RCAN, DnCNN, UNet, WindowTransformer
from models.training import Task, baseline_psnr, export_onnx, psnr, train

ZOO = Path(__file__).parent / "zoo"
MANIFEST = ZOO / "manifest.json"
#: Independent models below this size (bytes) also get fp16 and range-wrapper variants.
SMALL = 1_000_000

ARCHITECTURES: dict[str, Callable[..., torch.nn.Module]] = {
    "DnCNN": DnCNN, "FSRCNN": FSRCNN, "ESPCN": ESPCN, "EDSR": EDSR, "RCAN": RCAN,
    "WindowTransformer": WindowTransformer, "UNet": UNet,
}


@dataclass(frozen=True)
class Source:
    """An owner model: architecture, task, training set, seed and steps; `student` is the distillation target
    architecture and `rival` another architecture on the same task (an independent suspect)."""

    id: str
    arch: str
    kwargs: dict
    task: Task
    steps: int
    student: tuple[str, dict]
    rival: tuple[str, dict]
    other_task: Task  # fine-tuning "on another noise level"
    seed: int = 0
    batch: int = 16
    skip: frozenset[str] = frozenset()  # attacks left out (to keep the committed zoo small)


def _noise(channels: int, sigma: int) -> Task:
    return Task("noise", channels, sigma=sigma / 255)


SOURCES = [
    Source("dncnn17_gray_s25", "DnCNN", {"channels": 1, "depth": 17, "width": 64}, _noise(1, 25), 300,
           ("DnCNN", {"channels": 1, "depth": 6, "width": 32}), ("UNet", {"channels": 1, "width": 16}),
           _noise(1, 35), seed=1, batch=8,
           # 2.2 MB a file: the attacks that the small sources cover fully are left out here.
           skip=frozenset({"prune_5", "prune_30", "prune_60_finetuned", "noise_5pct", "rewrite_ortbasic",
                           "rewrite_range255", "rewrite_unfoldedbn"})),
    Source("dncnn6_gray_s50", "DnCNN", {"channels": 1, "depth": 6, "width": 32}, _noise(1, 50), 500,
           ("UNet", {"channels": 1, "width": 12}), ("DnCNN", {"channels": 1, "depth": 8, "width": 24}),
           _noise(1, 40), seed=2),
    Source("dncnn6_rgb_s15", "DnCNN", {"channels": 3, "depth": 6, "width": 32}, _noise(3, 15), 500,
           ("UNet", {"channels": 3, "width": 12}), ("WindowTransformer", {"channels": 3, "width": 16, "blocks": 1}),
           _noise(3, 25), seed=3),
    Source("swin_rgb_s25", "WindowTransformer", {"channels": 3, "width": 16, "blocks": 2}, _noise(3, 25), 500,
           ("DnCNN", {"channels": 3, "depth": 6, "width": 32}), ("UNet", {"channels": 3, "width": 12}),
           _noise(3, 15), seed=4),
    Source("unet_rgb_blur", "UNet", {"channels": 3, "width": 12}, Task("blur", 3, sigma=1.6), 500,
           ("DnCNN", {"channels": 3, "depth": 6, "width": 32}), ("DnCNN", {"channels": 3, "depth": 8, "width": 24}),
           Task("blur", 3, sigma=2.0), seed=5),
    Source("fsrcnn_x2_rgb", "FSRCNN", {"scale": 2, "channels": 3, "d": 32, "s": 12, "m": 3},
           Task("downsample", 3, scale=2), 2000, ("ESPCN", {"scale": 2, "channels": 3, "width": 32}),
           ("EDSR", {"scale": 2, "channels": 3, "width": 24, "blocks": 2}), Task("downsample", 3, scale=2), seed=6),
    Source("espcn_x4_rgb", "ESPCN", {"scale": 4, "channels": 3, "width": 32}, Task("downsample", 3, scale=4), 4000,
           ("EDSR", {"scale": 4, "channels": 3, "width": 24, "blocks": 2}),
           ("RCAN", {"scale": 4, "channels": 3, "width": 16, "groups": 1, "blocks": 2}),
           Task("downsample", 3, scale=4), seed=8),
    # x2: at x4 this tiny RCAN did not beat bicubic on average (it lost 0.7-1.5 dB on the darkest crop).
    Source("rcan_x2_rgb", "RCAN", {"scale": 2, "channels": 3, "width": 16, "groups": 1, "blocks": 2},
           Task("downsample", 3, scale=2), 1500, ("ESPCN", {"scale": 2, "channels": 3, "width": 32}),
           ("EDSR", {"scale": 2, "channels": 3, "width": 24, "blocks": 2}), Task("downsample", 3, scale=2), seed=9),
]


@dataclass
class Entry:
    """One zoo model as the manifest records it."""

    id: str
    source: str
    relation: str  # "source", "derived", "independent" or "reference" (same-architecture calibration model)
    attack: str
    params: dict
    architecture: str
    task: dict
    parent: str | None = None
    file: str = ""
    psnr: float = float("nan")
    baseline_psnr: float = float("nan")  # the degraded input's (bicubic for SR): what the model must beat
    sha256: str = ""


def _net(arch: str, kwargs: dict, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ARCHITECTURES[arch](**kwargs)


def _onnx_psnr(path: Path, task: Task) -> float:
    """Held-out PSNR of the ONNX file itself (through verifier's loader: layout, range, fp16 handled)."""
    from verifier import load_model

    model = load_model(path, threads=2)
    return psnr(lambda x: torch.from_numpy(model.run(x.numpy())), task)


@functools.cache
def _baseline(task: Task) -> float:
    return round(baseline_psnr(task), 3)


def _measure(path: Path, task: Task) -> tuple[float, float]:
    """(held-out PSNR of the file, PSNR of doing nothing), as the manifest records them."""
    return round(_onnx_psnr(path, task), 3), _baseline(task)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Builder:
    """Builds entries in order, skipping those already in the manifest with their file present."""

    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}
        if MANIFEST.exists():
            self.entries = {e["id"]: e for e in json.loads(MANIFEST.read_text())["models"]}
        self.count = 0

    def write(self) -> None:
        """Replace the manifest atomically (a build stopped at any moment leaves a readable one)."""
        temporary = MANIFEST.with_suffix(".tmp")
        temporary.write_text(json.dumps({"schema": 1, "models": list(self.entries.values())}, indent=1))
        os.replace(temporary, MANIFEST)

    def remeasure(self) -> None:
        """Measure every entry's held-out PSNR and baseline again from its committed file (after the held-out
        images or the measure change); files, hashes and everything else stay."""
        for count, entry in enumerate(self.entries.values(), 1):
            entry["psnr"], entry["baseline_psnr"] = _measure(ZOO / entry["file"], Task(**entry["task"]))
            print(f"[{count}/{len(self.entries)}] {entry['id']}: {entry['psnr']:.2f} dB "
                  f"(input {entry['baseline_psnr']:.2f} dB)", flush=True)
        self.write()

    def done(self, entry_id: str) -> bool:
        entry = self.entries.get(entry_id)
        return entry is not None and (ZOO / entry["file"]).exists()

    def record(self, entry: Entry, path: Path, task: Task) -> None:
        entry.file = str(path.relative_to(ZOO))
        entry.psnr, entry.baseline_psnr = _measure(path, task)
        entry.sha256 = _sha256(path)
        self.entries[entry.id] = entry.__dict__
        self.write()
        self.count += 1
        print(f"[{self.count}] {entry.id}: {entry.relation} {entry.attack} {entry.params} -> {entry.psnr:.2f} dB "
              f"(input {entry.baseline_psnr:.2f} dB)", flush=True)


def build_source(source: Source, builder: Builder) -> None:
    """The source, its derived suspects and its independent suspects."""
    folder = ZOO / source.id
    folder.mkdir(parents=True, exist_ok=True)
    task, channels = source.task, source.task.channels
    common = {"source": source.id, "task": asdict(task)}
    fit = {"batch": source.batch}
    owner_path = folder / "source.onnx"
    cache = folder / "source_weights.npz"  # the trained state (no pickle), to resume the weight-level attacks
    started = time.perf_counter()
    if cache.exists() and builder.done(f"{source.id}/source"):
        owner = _net(source.arch, source.kwargs, source.seed)
        with np.load(cache, allow_pickle=False) as state:
            owner.load_state_dict({name: torch.from_numpy(state[name]) for name in state.files})
        owner.eval()
    else:
        owner = train(_net(source.arch, source.kwargs, source.seed), task, "a", source.steps, source.seed, **fit)
        np.savez(cache, **{name: value.numpy() for name, value in owner.state_dict().items()})
        export_onnx(owner, channels, owner_path)
        builder.record(Entry(f"{source.id}/source", relation="source", attack="none", params={"steps": source.steps,
                             "images": "a", "seed": source.seed}, architecture=source.arch, **common),
                       owner_path, task)
    short = max(source.steps // 4, 50)

    def weight_attack(name: str, params: dict, make: Callable[[], torch.nn.Module], arch: str = source.arch,
                      fold: bool = True) -> None:
        entry_id = f"{source.id}/{name}"
        if builder.done(entry_id) or name in source.skip:
            return
        path = export_onnx(make(), channels, folder / f"{name}.onnx", fold=fold)
        builder.record(Entry(entry_id, relation="derived", attack=name.split("_")[0], params=params,
                             architecture=arch, parent=f"{source.id}/source", **common), path, task)

    def graph_attack(name: str, params: dict, make: Callable[[Path, Path], Path], parent: str = "source") -> None:
        """An ONNX-level attack on the source (a derived suspect) or on an independent model (still independent:
        a vendor may compress a model of its own)."""
        entry_id = f"{source.id}/{name}"
        if builder.done(entry_id) or name in source.skip:
            return
        parent_entry = builder.entries[f"{source.id}/{parent}"]
        relation = "derived" if parent == "source" else "independent"
        path = make(ZOO / parent_entry["file"], folder / f"{name}.onnx")
        builder.record(Entry(entry_id, relation=relation, attack=name.removeprefix(f"{parent}_").split("_")[0],
                             params=params, architecture=parent_entry["architecture"],
                             parent=parent_entry["id"], **common), path, task)

    lr = 2e-4
    weight_attack("finetune_same", {"images": "a", "steps": short, "lr": lr},
                  lambda: train(copy.deepcopy(owner), task, "a", short, source.seed + 100, lr=lr, **fit))
    weight_attack("finetune_other", {"images": "b", "steps": short, "lr": lr},
                  lambda: train(copy.deepcopy(owner), task, "b", short, source.seed + 101, lr=lr, **fit))
    weight_attack("finetune_task", {"task": asdict(source.other_task), "steps": short, "lr": lr},
                  lambda: train(copy.deepcopy(owner), source.other_task, "a", short, source.seed + 102, lr=lr, **fit))
    for fraction in (0.05, 0.3, 0.6):
        weight_attack(f"prune_{round(fraction * 100)}", {"fraction": fraction},
                      lambda f=fraction: attacks.prune(owner, f))
    for fraction in (0.3, 0.6):
        weight_attack(f"prune_{round(fraction * 100)}_finetuned", {"fraction": fraction, "steps": short, "lr": lr},
                      lambda f=fraction: train(attacks.prune(owner, f), task, "a", short, source.seed + 103, lr=lr,
                                               **fit))
    weight_attack("noise_1pct", {"relative_std": 0.01}, lambda: attacks.weight_noise(owner, 0.01, source.seed))
    weight_attack("noise_5pct", {"relative_std": 0.05}, lambda: attacks.weight_noise(owner, 0.05, source.seed))
    student_arch, student_kwargs = source.student
    weight_attack("distill", {"student": student_arch, **student_kwargs, "steps": source.steps},
                  lambda: train(_net(student_arch, student_kwargs, source.seed + 200), task, "b", source.steps,
                                source.seed + 104, teacher=owner), arch=student_arch)
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in owner.modules()):
        weight_attack("rewrite_unfoldedbn", {"graph": "BatchNormalization kept"}, lambda: owner, fold=False)
    int8 = {"format": "QDQ", "weights": "int8 per channel", "activations": "uint8"}
    fp16, range255 = {"dtype": "float16"}, {"value_range": [0, 255]}

    def quantize(a: Path, b: Path) -> Path:
        return attacks.quantize_int8(a, b, task, source.seed)

    graph_attack("quantize_int8", int8, quantize)
    graph_attack("quantize_fp16", fp16, attacks.to_fp16)
    graph_attack("rewrite_ortbasic", {"optimizer": "onnxruntime ORT_ENABLE_BASIC"}, attacks.ort_optimized)
    graph_attack("rewrite_range255", range255, attacks.range_wrapper)

    def independent(name: str, arch: str, kwargs: dict, images: str, seed: int, relation: str = "independent") -> None:
        entry_id = f"{source.id}/{name}"
        if builder.done(entry_id):
            return
        net = train(_net(arch, kwargs, seed), task, images, source.steps, seed, **fit)
        path = export_onnx(net, channels, folder / f"{name}.onnx")
        builder.record(Entry(entry_id, relation=relation, attack=name, params={"images": images, "seed": seed,
                             **kwargs}, architecture=arch, **common), path, task)

    independent("indep_seed", source.arch, source.kwargs, "a", source.seed + 300)
    independent("indep_data", source.arch, source.kwargs, "b", source.seed + 301)
    independent("indep_arch", *source.rival, "a", source.seed + 302)
    # Same architecture, trained independently as the owner would for calibration (see models.benchmark).
    independent("ref_seed", source.arch, source.kwargs, "a", source.seed + 303, relation="reference")
    # The distillation student's architecture trained on the true images: separates "learnt the owner's
    # function" from "has the student's architecture".
    independent("indep_student", *source.student, "b", source.seed + 304)
    # Independent models compressed or rewritten by their own vendor: negatives with the attacks' artefacts.
    for name in ("indep_seed", "indep_data", "indep_arch", "indep_student"):
        graph_attack(f"{name}_quantize_int8", int8, quantize, parent=name)
        if (folder / f"{name}.onnx").stat().st_size < SMALL:  # the zoo's size budget (60 MB)
            graph_attack(f"{name}_quantize_fp16", fp16, attacks.to_fp16, parent=name)
            graph_attack(f"{name}_rewrite_range255", range255, attacks.range_wrapper, parent=name)
    print(f"{source.id}: {time.perf_counter() - started:.0f} s", flush=True)


def sources_table(entries: dict[str, dict]) -> str:
    """Markdown: each source's architecture, task, training steps and held-out PSNR against doing nothing
    (the README's table; '-' for a source not built yet)."""
    lines = ["| source | architecture | task | steps | held-out PSNR (dB) | doing nothing (dB) | gain (dB) |",
             "|---|---|---|---|---|---|---|"]
    for source in SOURCES:
        task = source.task
        what = {"noise": f"noise sigma {round(task.sigma * 255)}", "blur": f"Gaussian blur sigma {task.sigma}",
                "downsample": f"x{task.scale} SR"}[task.kind]
        entry = entries.get(f"{source.id}/source")
        psnr_, base = (entry["psnr"], entry["baseline_psnr"]) if entry else (float("nan"), float("nan"))
        size = ", ".join(f"{k} {v}" for k, v in source.kwargs.items() if k not in ("channels", "scale"))
        lines.append(f"| {source.id} | {source.arch} ({size}) | {what}, {task.channels} ch | {source.steps} | "
                     f"{psnr_:.2f} | {base:.2f} | {psnr_ - base:+.2f} |".replace("+nan", "-").replace("nan", "-"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="source ids to build")
    parser.add_argument("--list", action="store_true", help="list the sources and their held-out PSNR, then exit")
    parser.add_argument("--remeasure", action="store_true",
                        help="measure every committed model's held-out PSNR again, then exit")
    args = parser.parse_args()
    if args.list:
        print(sources_table(Builder().entries))
        return
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    np.random.seed(0)
    builder = Builder()
    if args.remeasure:
        builder.remeasure()
        return
    for source in SOURCES:
        if args.only is None or source.id in args.only:
            build_source(source, builder)


if __name__ == "__main__":
    main()
