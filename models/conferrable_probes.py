"""Conferrable probes (Lukas et al., ICLR 2021) against distilled students of real owners (issue 12 item 5 (c)).

Distilled students are 0/12 detected on the real-model benchmark, and no statistic on *degraded natural* images
separates them from strong independent real models (``models/benchmark_results/real/distill_probes.md``).  This
experiment searches, per owner, for inputs on which the owner's OWN distilled students agree with the owner while
independent models of the same strength do not, and asks whether the thief's students (never seen in the search)
also agree with the owner there more than every real independent negative does.

Per owner (``models.bench_real.OWNERS``), at "fingerprint time":

* 3 **students**: small networks of different architectures distilled on image set "b" (not the thief's set "a")
  with the owner as teacher (``models.training.train``, batch 16, patch 48), and 3 **controls**: the same
  architectures, data and steps, trained on clean targets (independent models of equal strength);
* **probes**: ``--probes`` degraded crops of set "b" in the owner's input space (noisy crops for a denoiser,
  average-pooled crops for SR), then optionally optimised by Adam on the input to minimise, per probe,
  ``log(mean_students d(S, O)) - log(mean_controls d(C, O))`` with ``d`` the mean squared output difference
  (variant ``mse``) or ``log mean_pixels(mean_students (S-O)^2 / (mean_controls (C-O)^2 + tiny))`` (variant
  ``pix``), inside an L-inf ball of radius eps around the start, clipped to [0, 1].  ``start`` is the
  unoptimised crops (baseline).

At test time, for each suspect X (exported ONNX, run with onnxruntime through ``verifier.load_model``):
``t(X) = log(mean_probes d(X, O)) - log(mean_probes mean_controls d(C, O))`` (lower: closer to the owner).  Suspects:
the thief's students (``WORK/attacks/<owner>/distill_*.onnx``, the benchmark's positives), more converged students
from ``/tmp/distill_probes/students`` if present, the owner's ``plain`` export (sanity: t very low), every real
independent negative of the owner in ``models/benchmark_results/real/pairs.json``, and held-out models trained
here with new seeds and never used in the search (2 controls on clean targets, 1 student of the owner).
A positive is "detected" when its t is below the minimum t of all real negatives.

    python -m models.conferrable_probes --work /tmp/tpw [--owners yjn870_FSRCNN-pytorch/fsrcnn_x3.pth ...]
        [--steps N] [--variants start "geo eps 0.1" ...] [--per-arch 2] [--new-arch] [--tag LABEL]
        [--cache /tmp/conferrable_probes] [--report]

(``--per-arch``: students and controls per architecture, new seeds; ``--new-arch``: also hold out a student and a
control of an architecture absent from the search; ``geo``: the objective with geometric means over models; the
commands behind the report are listed in it.)

Every run uses one thread.  Results per owner go to CACHE/<owner>.json; the report
``models/benchmark_results/real/conferrable_probes.md`` is rewritten from every JSON in CACHE (``--report``
rewrites it without running anything).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from models.bench_real import OWNERS, load_module, other_architecture, real_negatives, reinitialised
from models.torch_archs import EDSR, RCAN, DnCNN, UNet
from models.training import Task, images, psnr, train
from models.weight_null import safe_name

THIRD_PARTY = Path(__file__).resolve().parents[1] / ".." / "shared" / "third_party"
REPORT = Path(__file__).resolve().parent / "benchmark_results" / "real" / "conferrable_probes.md"
CONVERGED = Path("/tmp/distill_probes/students")
TINY = 1e-12
#: search variants: (name, objective, eps); eps 0 = no search (the start crops)
VARIANTS = (("start", "mse", 0.0), ("mse eps 0.03", "mse", 0.03), ("mse eps 0.1", "mse", 0.1),
            ("pix eps 0.1", "pix", 0.1), ("mse eps 1", "mse", 1.0), ("geo eps 0.1", "geo", 0.1),
            ("geo eps 1", "geo", 1.0))
DEFAULT_VARIANTS = ("start", "mse eps 0.03", "mse eps 0.1", "pix eps 0.1", "mse eps 1")


def architectures(task: Task, owner: torch.nn.Module, seed: int) -> list[tuple[str, torch.nn.Module]]:
    """The three small architectures students and controls use (fresh weights from `seed`)."""
    torch.manual_seed(seed)
    nets = _architectures(task, owner, seed)
    for _, net in nets:
        for parameter in net.parameters():
            parameter.requires_grad_(True)
    return nets


def _architectures(task: Task, owner: torch.nn.Module, seed: int) -> list[tuple[str, torch.nn.Module]]:
    if task.kind == "downsample":
        return [("other_architecture (ESPCN-32)", other_architecture(task)),
                ("owner architecture, reinitialised", reinitialised(owner, seed)),
                ("EDSR-16x2", EDSR(scale=task.scale, channels=task.channels, width=16, blocks=2))]
    # the owner's 17-layer DnCNN takes about 1.4 s a training step on one thread: too slow; three small nets
    return [("other_architecture (DnCNN-8x32)", other_architecture(task)),
            ("DnCNN-6x32 no BN", DnCNN(channels=task.channels, depth=6, width=32, batch_norm=False)),
            ("UNet-16", UNet(channels=task.channels, width=16))]


def new_architecture(task: Task, seed: int) -> tuple[str, torch.nn.Module]:
    """A small architecture none of the search's students or controls has."""
    torch.manual_seed(seed)
    if task.kind == "downsample":
        return "RCAN-16 (1 group, 2 blocks)", RCAN(scale=task.scale, channels=task.channels, width=16, groups=1,
                                                      blocks=2)
    return "DnCNN-10x24 no BN", DnCNN(channels=task.channels, depth=10, width=24, batch_norm=False)


def start_probes(task: Task, count: int, size: int, seed: int) -> torch.Tensor:
    """`count` degraded crops of set "b" of side `size` in the owner's input space, clipped to [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    pool = images("b", task.channels)
    side = size * (task.scale if task.kind == "downsample" else 1)
    crops = []
    for index in range(count):
        image = pool[index % len(pool)]
        top = int(torch.randint(image.shape[0] - side + 1, (1,), generator=generator))
        left = int(torch.randint(image.shape[1] - side + 1, (1,), generator=generator))
        crops.append(np.ascontiguousarray(image[top:top + side, left:left + side].transpose(2, 0, 1)))
    clean = torch.from_numpy(np.stack(crops))
    return task.degrade(clean, generator).clamp(0, 1)


def distances(outputs: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Per-probe mean squared difference, (P,)."""
    return (outputs - owner).square().flatten(1).mean(1)


def search(owner: torch.nn.Module, students: list[torch.nn.Module], controls: list[torch.nn.Module],
           start: torch.Tensor, objective: str, eps: float, steps: int) -> torch.Tensor:
    """Adam on the probes (each probe its own loss, summed) within the L-inf ball `eps` around `start`."""
    if eps == 0:
        return start.clone()
    delta = torch.zeros_like(start, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=eps / 10)
    for _ in range(steps):
        x = start + delta
        target = owner(x)
        s = torch.stack([(net(x) - target).square() for net in students]).mean(0)
        c = torch.stack([(net(x) - target).square() for net in controls]).mean(0)
        if objective == "geo":  # geometric means over models: no single weak model dominates
            each_s = torch.stack([(net(x) - target).square().flatten(1).mean(1) for net in students])
            each_c = torch.stack([(net(x) - target).square().flatten(1).mean(1) for net in controls])
            loss = (torch.log(each_s + TINY).mean(0) - torch.log(each_c + TINY).mean(0)).sum()
        elif objective == "mse":
            loss = (torch.log(s.flatten(1).mean(1) + TINY) - torch.log(c.flatten(1).mean(1) + TINY)).sum()
        else:
            floor = c.mean().detach() * 1e-3 + TINY
            loss = torch.log((s / (c + floor)).flatten(1).mean(1)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            delta.clamp_(-eps, eps)
            delta.copy_((start + delta).clamp(0, 1) - start)
    return (start + delta).detach()


def onnx_runner(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """An exported model as a callable on NCHW tensors (one probe per call)."""
    from verifier import load_model

    model = load_model(path, threads=1)
    return lambda x: torch.from_numpy(np.concatenate([model.restore(p[None].numpy()) for p in x]).astype(np.float32))


def suspects(owner_name: str, work: Path) -> list[tuple[str, str, Path]]:
    """(role, name, ONNX path) of every exported suspect: thief students, converged students, plain, negatives."""
    folder = work / "attacks" / safe_name(owner_name)
    found = [("thief student", name, folder / f"{name}.onnx")
             for name in ("distill_same_architecture", "distill_other_architecture")]
    converged = sorted((CONVERGED / safe_name(owner_name)).glob("*.onnx"))
    found += [("converged thief student", path.stem, path) for path in converged]
    found.append(("sanity (owner export)", "plain", folder / "plain.onnx"))
    found += [("real negative", name, work / f"{safe_name(name)}.onnx") for name in real_negatives(owner_name)]
    return found


def measure(owner_name: str, work: Path, steps: int, probes: int, size: int, search_steps: int,
            variants: list[str], per_arch: int = 1, new_arch: bool = False) -> dict:
    """Train students and controls, search probes for every variant, score every suspect."""
    task = OWNERS[owner_name]
    owner = load_module(THIRD_PARTY / owner_name).eval()
    for parameter in owner.parameters():
        parameter.requires_grad_(False)
    result: dict = {"owner": owner_name, "steps": steps, "probes": probes, "size": size,
                    "search_steps": search_steps, "per_arch": per_arch, "models": [], "variants": {}}
    with torch.no_grad():
        result["owner_psnr"] = psnr(owner, task)
    trained: dict[str, list[torch.nn.Module]] = {"student": [], "control": [], "held-out student": [],
                                                 "held-out control": []}
    plan = [("student", 10, owner, False), ("control", 20, None, False)]
    plan += [(role, 100 * copy + seed, teacher, False) for copy in range(1, per_arch)
             for role, seed, teacher, _ in plan]
    plan += [("held-out control", 30, None, False), ("held-out student", 40, owner, False)]
    if new_arch:
        plan += [("held-out control", 50, None, True), ("held-out student", 60, owner, True)]
    for role, seed, teacher, unseen in plan:
        nets = architectures(task, owner, seed)
        if unseen:  # an architecture no search model has: does agreement transfer across architectures?
            nets = [new_architecture(task, seed)]
        elif role == "held-out control":
            nets = [nets[0], nets[2]]
        elif role == "held-out student":
            nets = [nets[0]]
        for offset, (arch, net) in enumerate(nets):
            started = time.perf_counter()
            train(net, task, "b", steps, seed=seed + offset, batch=16, patch=48, teacher=teacher)
            for parameter in net.parameters():
                parameter.requires_grad_(False)
            seconds = time.perf_counter() - started
            with torch.no_grad():
                quality = psnr(net, task)
            trained[role].append(net)
            result["models"].append({"role": role, "arch": arch, "seed": seed + offset, "seconds": seconds,
                                     "psnr": quality})
            print(f"  {role} {arch}: {seconds:.0f} s, {quality:.2f} dB", flush=True)
    exported = [(role, name, path) for role, name, path in suspects(owner_name, work) if path.exists()]
    result["missing"] = [name for role, name, path in suspects(owner_name, work) if not path.exists()]
    runners = {name: onnx_runner(path) for role, name, path in exported}
    result["suspect_psnr"] = {}
    for _, name, _ in exported:
        try:
            result["suspect_psnr"][name] = psnr(runners[name], task)
        except Exception as error:  # a model that cannot take the crop size is reported, not fatal
            result["suspect_psnr"][name] = None
            print(f"  psnr failed for {name}: {error}", flush=True)
    start = start_probes(task, probes, size, seed=5)
    for variant, objective, eps in VARIANTS:
        if variant not in variants:
            continue
        started = time.perf_counter()
        x = search(owner, trained["student"], trained["control"], start, objective, eps, search_steps)
        seconds = time.perf_counter() - started
        with torch.no_grad():
            target = owner(x)
            control = torch.stack([distances(net(x), target) for net in trained["control"]]).mean()
            scores: list[dict] = []

            def score(role: str, name: str, outputs: torch.Tensor, target: torch.Tensor = target,
                      control: torch.Tensor = control, scores: list[dict] = scores) -> None:
                value = float(torch.log(distances(outputs, target).mean() + TINY) - torch.log(control + TINY))
                scores.append({"role": role, "name": name, "t": value})

            for role in ("student", "held-out student", "held-out control"):
                for index, net in enumerate(trained[role]):
                    score(role, f"{role} {index}", net(x))
            for role, name, _ in exported:
                try:
                    score(role, name, runners[name](x))
                except Exception as error:
                    print(f"  {name} failed: {error}", flush=True)
        result["variants"][variant] = {"seconds": seconds, "scores": scores,
                                       "distance_to_start": float((x - start).abs().max())}
        negatives = [s["t"] for s in scores if s["role"] == "real negative"]
        thief = [s["t"] for s in scores if s["role"] == "thief student"]
        print(f"  {variant}: {seconds:.0f} s; thief {[round(v, 2) for v in thief]} min negative "
              f"{min(negatives) if negatives else float('nan'):.2f}", flush=True)
    return result


def row_table(result: dict) -> list[str]:
    """Per-suspect t for every variant."""
    variants = list(result["variants"])
    lines = ["| role | suspect | held-out PSNR (dB) | " + " | ".join(f"t ({v})" for v in variants) + " |",
             "|---|---|---|" + "---|" * len(variants)]
    trained = [(role + " " + str(i), m) for role in ("student", "held-out student", "held-out control")
               for i, m in enumerate(m for m in result["models"] if m["role"] == role)]
    quality = {name: m["psnr"] for name, m in trained}
    architecture = {name: m["arch"] for name, m in trained}
    names = [(s["role"], s["name"]) for s in result["variants"][variants[0]]["scores"]]
    for role, name in names:
        value = quality.get(name, result["suspect_psnr"].get(name))
        cells = []
        for variant in variants:
            found = [s["t"] for s in result["variants"][variant]["scores"] if s["name"] == name]
            cells.append(f"{found[0]:.2f}" if found else "-")
        shown = "-" if value is None else f"{value:.2f}"
        shown_name = f"`{name}` ({architecture[name]})" if name in architecture else f"`{name}`"
        lines.append(f"| {role} | {shown_name} | {shown} | " + " | ".join(cells) + " |")
    return lines


def summary(result: dict) -> list[str]:
    """Detections below every real negative, per variant."""
    lines = ["| variant | search s | max change | min t of real negatives | thief students below it | "
             "converged thief students below | held-out student below | held-out controls below | "
             "mean t: search students / held-out student / held-out controls |",
             "|---|---|---|---|---|---|---|---|---|"]
    for variant, data in result["variants"].items():
        scores = data["scores"]
        negatives = [s["t"] for s in scores if s["role"] == "real negative"]
        floor = min(negatives) if negatives else float("nan")

        def below(role: str, scores: list[dict] = scores, floor: float = floor) -> str:
            group = [s["t"] for s in scores if s["role"] == role]
            return f"{sum(t < floor for t in group)}/{len(group)}"

        def mean(role: str, scores: list[dict] = scores) -> str:
            return f"{np.mean([s['t'] for s in scores if s['role'] == role]):.2f}"

        lines.append(f"| {variant} | {data['seconds']:.0f} | {data['distance_to_start']:.3f} | {floor:.2f} | "
                     f"{below('thief student')} | {below('converged thief student')} | {below('held-out student')} | "
                     f"{below('held-out control')} | {mean('student')} / {mean('held-out student')} / "
                     f"{mean('held-out control')} |")
    return lines


#: Everything above this line of the report is written by hand (machine, commands, Findings) and kept on reruns.
GENERATED = "<!-- generated below by models/conferrable_probes.py from the per-run JSON files -->"


def write(results: list[dict], out: Path) -> None:
    """The Markdown report: the hand-written part above GENERATED (if the report has one) kept, the tables redone."""
    previous = out.read_text() if out.exists() else ""
    if GENERATED in previous:
        lines = [previous.split(GENERATED)[0].rstrip("\n"), "", GENERATED, ""]
    else:
        lines = [f"# Conferrable probes against distilled students, {datetime.date.today()}", "",
                 "`python -m models.conferrable_probes --work /tmp/tpw` (see the module docstring of "
                 "`models/conferrable_probes.py` for what is measured).", "", GENERATED, ""]
    for result in results:
        train_seconds = sum(m["seconds"] for m in result["models"] if m["role"] in ("student", "control"))
        lines += [f"## {result['owner']}" + (f" ({result['tag']})" if result.get("tag") else ""), "",
                  f"Owner held-out PSNR {result['owner_psnr']:.2f} dB.  {result['steps']} training steps per model "
                  f"(batch 16, patch 48, set b); {result['probes']} probes of {result['size']}x{result['size']} "
                  f"(model input); {result['search_steps']} Adam steps per searched variant; "
                  f"{result.get('per_arch', 1)} student(s) and control(s) per architecture.  Students + controls "
                  f"training: {train_seconds:.0f} s.", "",
                  "| role | architecture | seed | train s | held-out PSNR (dB) |", "|---|---|---|---|---|"]
        lines += [f"| {m['role']} | {m['arch']} | {m['seed']} | {m['seconds']:.0f} | {m['psnr']:.2f} |"
                  for m in result["models"]]
        lines += ["", *summary(result), "", *row_table(result), ""]
        if result.get("missing"):
            lines += [f"Missing exports (not scored): {', '.join(result['missing'])}", ""]
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="the real benchmark's work folder")
    parser.add_argument("--owners", nargs="*", default=["yjn870_FSRCNN-pytorch/fsrcnn_x3.pth",
                                                         "Nhat-Thanh_ESPCN-Pytorch/ESPCN-x3.pt",
                                                         "cszn_KAIR/dncnn_25.pth"])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/conferrable_probes"))
    parser.add_argument("--steps", type=int, default=0, help="training steps (0: 600 for SR, 300 for denoisers)")
    parser.add_argument("--search-steps", type=int, default=0, help="Adam steps (0: 50 for SR, 40 for denoisers)")
    parser.add_argument("--probes", type=int, default=16)
    parser.add_argument("--variants", nargs="*", default=list(DEFAULT_VARIANTS),
                        help=f"search variants among {[v[0] for v in VARIANTS]}")
    parser.add_argument("--per-arch", type=int, default=1, help="students and controls per architecture (seeds)")
    parser.add_argument("--new-arch", action="store_true",
                        help="also hold out a student and a control of an architecture the search never saw")
    parser.add_argument("--tag", default="", help="a label for this configuration (also in the cache file name)")
    parser.add_argument("--report", action="store_true", help="only rewrite the report from CACHE")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for owner_name in args.owners:
            task = OWNERS[owner_name]
            sr = task.kind == "downsample"
            steps = args.steps or (600 if sr else 300)
            search_steps = args.search_steps or (50 if sr else 40)
            print(owner_name, flush=True)
            result = measure(owner_name, args.work, steps, args.probes if sr else min(args.probes, 8),
                             48 if sr else 32, search_steps, args.variants, args.per_arch, args.new_arch)
            result["tag"] = args.tag
            suffix = f"_{safe_name(args.tag)}" if args.tag else ""
            (args.cache / f"{safe_name(owner_name)}{suffix}.json").write_text(json.dumps(result, indent=1))
    results = [json.loads(path.read_text()) for path in sorted(args.cache.glob("*.json"))]
    order = {name: i for i, name in enumerate(args.owners)}
    results.sort(key=lambda r: (order.get(r["owner"], len(order)), r.get("tag", "")))
    write(results, args.out)


if __name__ == "__main__":
    main()
