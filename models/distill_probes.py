"""Can probes that students copy tell distilled students from independent real models? (issue 12 item 5)

On the real-model benchmark (``python -m models.bench_real --work WORK``) distilled students are 0/12
detected: they share no weights, and on the fingerprint's off-manifold critical images their behavioural
z stays at most 4.6 while independent real models of other authors reach 10.4.  Students are trained on
degraded *natural* patches (set "a", the owner's degradation), so this measures, per owner, statistics on
degraded natural images instead:

* ``err``: partial correlation (mean over probes, Fisher z, as ``verifier.method.behaviour.response_score``) of
  the error maps ``suspect(x) - clean`` and ``owner(x) - clean`` given the bundled reference models'
  error maps (the controls);
* ``raw``: the same without controls;
* ``delta``: the same on what the model changes, ``f(x) - base(x)`` (base: the noisy input for a
  denoiser, bicubic upscaling for SR), given the references' changes;
* ``strong``: ``err`` with the other independent real models of the owner's I/O added to the controls
  (leave-one-out: a negative never controls itself; a student gets each leave-one-out set and the mean);
  it asks whether a fingerprint that shipped strong controls would separate them;
* ``close``: -log of the suspect's squared distance to the owner's output in units of the owner's own
  squared error (how much of the owner's error the suspect reproduces pixel for pixel).

Each is computed on three probe sets: crops of set "a" (the students' training images), "b" and
"held_out" (see ``models.training.IMAGE_SETS``).  Per owner, the suspects are the two students, two
weight-derived copies as a sanity check (``plain``, ``finetune_other_images``) and the negatives: every
other exported third-party model of the owner's I/O outside its weight family, exactly the negatives of
``models/benchmark_results/real/pairs.json``.  Scores are also given in units of the owner's reference
models (z: each reference scored against the owner with the other references as its controls).

    python -m models.distill_probes --work /tmp/tpw [--cache /tmp/distill_probes] [--threads 1]

reads the benchmark's exported models and attacked copies from WORK (nothing is trained or exported),
caches every model's outputs in --cache, and writes models/benchmark_results/real/distill_probes.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.bench_real import OWNERS, real_negatives
from models.training import Task, images
from models.weight_null import safe_name
from verifier import load_model
from verifier.method.behaviour import partial_correlation
from verifier.method.references import BUNDLED

SETS = ("a", "b", "held_out")
STATISTICS = ("err", "raw", "delta", "strong", "close")
SIZE = 96  # clean crop side (divisible by every scale)
CROPS = 4  # per image
MAX_CORRELATION = 0.999999
STUDENTS = ("distill_same_architecture", "distill_other_architecture")
STRONG = ("strong_same_architecture", "strong_other_architecture")  # trained here by --train (see `student`)
SANITY = ("plain", "finetune_other_images")


def probes(task: Task, set_name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, clean targets, base) of CROPS seeded crops per image of `set_name`, degraded as the task."""
    generator = np.random.default_rng(seed)
    clean = []
    for image in images(set_name, task.channels):
        for _ in range(CROPS):
            top = int(generator.integers(image.shape[0] - SIZE + 1))
            left = int(generator.integers(image.shape[1] - SIZE + 1))
            clean.append(image[top:top + SIZE, left:left + SIZE].transpose(2, 0, 1))
    targets = np.ascontiguousarray(np.stack(clean), dtype=np.float32)
    tensor = torch.from_numpy(targets)
    if task.kind == "noise":
        noisy = targets + task.sigma * generator.standard_normal(targets.shape).astype(np.float32)
        return noisy, targets, noisy
    low = F.avg_pool2d(tensor, task.scale)
    base = F.interpolate(low, scale_factor=task.scale, mode="bicubic", align_corners=False)
    return low.numpy(), targets, base.numpy()


def student(owner_name: str, task: Task, teacher_path: Path, same: bool, target: Path, steps: int,
            third_party: Path, pool: int = 1024, batch: int = 16, patch: int = 48) -> Path:
    """A student trained to convergence (the benchmark's 160 steps leave students near their inputs' PSNR).

    Distillation as an attacker with only the owner's outputs would do it: `pool` seeded crops of set "a",
    degraded as the task once, labelled by the owner's ONNX export, then `steps` Adam steps (lr 1e-3, cosine)
    on the MSE to those labels.  `same`: the owner's architecture with fresh weights (needs the owner's
    weights in `third_party` only to build the module); else the benchmark's other architecture.
    """
    from models.bench_real import export_module, load_module, other_architecture, reinitialised
    from models.training import export_onnx, patches

    generator = torch.Generator().manual_seed(21 if same else 22)
    clean = patches(images("a", task.channels), pool, patch, generator)
    degraded = task.degrade(clean, generator)
    teacher = load_model(teacher_path, threads=1)
    labels = torch.from_numpy(np.concatenate([teacher.restore(x[None].numpy()) for x in degraded]))
    net = reinitialised(load_module(third_party / owner_name), 23) if same else other_architecture(task)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    net.train()
    for _ in range(steps):
        pick = torch.randint(pool, (batch,), generator=generator)
        loss = F.mse_loss(net(degraded[pick]), labels[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    net.eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    if same:
        return export_module(net, third_party / owner_name, task.channels, target)
    return export_onnx(net, task.channels, target)


def outputs(path: Path, inputs: np.ndarray, threads: int) -> np.ndarray:
    """The model's output for every probe, one call each (batch 1)."""
    model = load_model(path, threads=threads)
    return np.stack([model.restore(x[None])[0] for x in inputs]).astype(np.float32)


def fisher(correlations: list[float]) -> float:
    """Fisher z of the mean correlation (as ``verifier.method.behaviour.response_score``)."""
    return float(np.arctanh(np.clip(np.mean(correlations), -MAX_CORRELATION, MAX_CORRELATION)))


def partial(owner: np.ndarray, suspect: np.ndarray, controls: np.ndarray) -> float:
    """Mean over probes of the partial correlation given `controls` (n, P, ...); n may be 0."""
    if len(controls) == 0:
        return fisher([float(np.corrcoef(o.ravel(), s.ravel())[0, 1]) for o, s in zip(owner, suspect, strict=True)])
    return fisher([partial_correlation(owner[k], suspect[k], controls[:, k]) for k in range(len(owner))])


def statistics(out: dict[str, np.ndarray], clean: np.ndarray, base: np.ndarray, name: str, references: list[str],
               negatives: list[str]) -> dict[str, float]:
    """Every statistic of suspect `name` against the owner (`out` holds every model's outputs)."""
    error = {key: value - clean for key, value in out.items()}
    change = {key: value - base for key, value in out.items()}
    refs = [r for r in references if r != name]
    controls = np.stack([error[r] for r in refs])
    result = {
        "err": partial(error["owner"], error[name], controls),
        "raw": partial(error["owner"], error[name], np.empty((0,))),
        "delta": partial(change["owner"], change[name], np.stack([change[r] for r in refs])),
    }
    others = [n for n in negatives if n != name]
    if name in negatives or not others:  # a negative: every other negative controls
        sets = [others]
    else:  # a student or a reference: each leave-one-out set a negative would get, averaged
        sets = [[m for m in others if m != left] for left in others] if len(others) > 1 else [[]]
    result["strong"] = float(np.mean([partial(error["owner"], error[name],
                                              np.stack([error[r] for r in refs + s])) for s in sets]))
    owner_error = float(np.sum(error["owner"] ** 2))
    result["close"] = -float(np.log(max(float(np.sum((out[name] - out["owner"]) ** 2)), 1e-30) / owner_error))
    return result


def measure(work: Path, cache: Path, threads: int) -> dict:
    """Per owner, per probe set: every suspect's statistics and the references' (for z units)."""
    report: dict = {}
    for owner_name, task in OWNERS.items():
        owner_safe = safe_name(owner_name)
        negatives = real_negatives(owner_name)
        folder = BUNDLED / f"{task.kind}-c{task.channels}-x{task.scale}"
        paths = {"owner": work / "attacks" / owner_safe / "plain.onnx"}
        paths.update({f"ref:{p.stem}": p for p in sorted(folder.glob("*.onnx"))})
        paths.update({n: work / "attacks" / owner_safe / f"{n}.onnx" for n in STUDENTS + SANITY})
        paths.update({n: cache / "students" / owner_safe / f"{n}.onnx" for n in STRONG
                      if (cache / "students" / owner_safe / f"{n}.onnx").is_file()})
        paths.update({n: work / f"{safe_name(n)}.onnx" for n in negatives})
        references = [k for k in paths if k.startswith("ref:")]
        report[owner_name] = {"negatives": negatives, "references": references, "sets": {}, "seconds": {}}
        print(f"owner {owner_name}: {len(references)} references, {len(negatives)} negatives", flush=True)
        for index, set_name in enumerate(SETS):
            inputs, clean, base = probes(task, set_name, seed=100 + index)
            file = cache / f"{owner_safe}.{set_name}.npz"
            out = dict(np.load(file)) if file.is_file() else {}
            for key, path in paths.items():
                if key not in out:
                    started = time.perf_counter()
                    out[key] = outputs(path, inputs, threads)
                    report[owner_name]["seconds"].setdefault(key, 0.0)
                    report[owner_name]["seconds"][key] += time.perf_counter() - started
            cache.mkdir(parents=True, exist_ok=True)
            np.savez(file, **out)
            started = time.perf_counter()
            strong = [n for n in STRONG if n in paths]
            scores = {name: statistics(out, clean, base, name, references, negatives)
                      for name in references + list(STUDENTS + SANITY) + strong + negatives}
            report[owner_name]["score_seconds"] = (time.perf_counter() - started) / len(scores)
            report[owner_name]["sets"][set_name] = scores
            psnr = {k: float(10 * np.log10(1 / np.mean((np.clip(v, 0, 1) - clean) ** 2))) for k, v in out.items()}
            report[owner_name].setdefault("psnr", {})[set_name] = psnr
            line = " ".join(f"{n[:8]}:{scores[n]['err']:.2f}" for n in STUDENTS)
            print(f"  set {set_name}: students err {line}; negatives max "
                  f"{max(scores[n]['err'] for n in negatives):.2f}", flush=True)
    return report


def summary(report: dict) -> tuple[str, dict]:
    """Markdown tables: per statistic and set, per owner students vs negatives; pooled counts."""
    lines: list[str] = []
    caught: dict = {}
    for set_name in SETS:
        for stat in STATISTICS:
            lines += [f"\n#### `{stat}` on set `{set_name}`\n",
                      "| owner | benchmark students (same, other) | converged students (same, other) | negatives n | "
                      "max | mean | std | above max | sanity plain / finetune | students z (refs) | "
                      "converged z (refs) | neg max z (refs) |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|"]
            counts = {"bench": [0, 0, 0, 0], "conv": [0, 0, 0, 0]}  # own max, pooled max (refs z), total, (negs z)
            pooled: dict[str, list[float]] = {key: [] for key in ("bench", "conv", "neg", "bench_n", "conv_n",
                                                                                 "neg_n")}
            for owner_name, owner in report.items():
                scores = owner["sets"][set_name]
                refs = np.array([scores[r][stat] for r in owner["references"]])
                mean, std = refs.mean(), max(refs.std(ddof=1), 1e-3)
                neg = np.array([scores[n][stat] for n in owner["negatives"]])
                groups = {"bench": list(STUDENTS), "conv": [n for n in STRONG if n in scores]}
                shown, zs = {}, {}
                hits = 0
                for group, names in groups.items():
                    values = [scores[n][stat] for n in names]
                    above = sum(v > neg.max() for v in values)
                    hits += above
                    counts[group][0] += above
                    counts[group][2] += len(values)
                    zs[group] = [(v - mean) / std for v in values]
                    pooled[group] += zs[group]
                    shown[group] = ", ".join(f"{v:.3f}" for v in values) or "-"
                zn = (neg - mean) / std
                pooled["neg"] += list(zn)
                if len(neg) > 2:  # in units of the owner's negatives (each negative against the others)
                    loo = [(v - np.delete(neg, i).mean()) / np.delete(neg, i).std(ddof=1) for i, v in enumerate(neg)]
                    pooled["neg_n"] += loo
                    for group, names in groups.items():
                        pooled[f"{group}_n"] += [(scores[n][stat] - neg.mean()) / neg.std(ddof=1) for n in names]
                lines.append(f"| {owner_name} | {shown['bench']} | {shown['conv']} | {len(neg)} | {neg.max():.3f} | "
                             f"{neg.mean():.3f} | {neg.std():.3f} | {hits} | "
                             f"{scores['plain'][stat]:.2f} / {scores['finetune_other_images'][stat]:.2f} | "
                             + ", ".join(f"{z:.1f}" for z in zs["bench"]) + " | "
                             + (", ".join(f"{z:.1f}" for z in zs["conv"]) or "-") + f" | {zn.max():.1f} |")
            threshold = max(pooled["neg"])
            for group in ("bench", "conv"):
                counts[group][1] = sum(z > threshold for z in pooled[group])
                counts[group][3] = sum(z > max(pooled["neg_n"]) for z in pooled[f"{group}_n"])
            caught[(set_name, stat)] = counts
            lines.append(f"\nAbove every negative of their owner: benchmark students {counts['bench'][0]}/"
                         f"{counts['bench'][2]}, converged students {counts['conv'][0]}/{counts['conv'][2]}.  "
                         f"Pooled in reference z: the highest of {len(pooled['neg'])} negatives is {threshold:.1f}; "
                         f"above it: benchmark students {counts['bench'][1]}/{counts['bench'][2]}, converged "
                         f"{counts['conv'][1]}/{counts['conv'][2]}.  "
                         "In units of each owner's negatives (owners with 3 or more; "
                         f"each negative against the others): the highest of {len(pooled['neg_n'])} negatives is "
                         f"{max(pooled['neg_n']):.1f}, students reach "
                         f"{max(pooled['bench_n'] + pooled['conv_n']):.1f}; above it: benchmark students "
                         f"{counts['bench'][3]}/{len(pooled['bench_n'])}, converged {counts['conv'][3]}/"
                         f"{len(pooled['conv_n'])}.")
    return "\n".join(lines), caught


def write(report: dict, target: Path, command: str) -> None:
    """The Markdown report."""
    tables, caught = summary(report)
    overview = ["| set | statistic | benchmark students above every negative of their owner | above the pooled "
                "max (ref z) | converged students above every negative | above the pooled max | above the pooled max "
                "(negatives z), benchmark / converged |",
                "|---|---|---|---|---|---|---|"]
    overview += [f"| {s} | `{stat}` | {c['bench'][0]}/{c['bench'][2]} | {c['bench'][1]}/{c['bench'][2]} | "
                 f"{c['conv'][0]}/{c['conv'][2]} | {c['conv'][1]}/{c['conv'][2]} | "
                 f"{c['bench'][3]} / {c['conv'][3]} |" for (s, stat), c in caught.items()]
    quality = ["| owner | model | PSNR a | PSNR b | PSNR held_out |", "|---|---|---|---|---|"]
    for owner_name, owner in report.items():
        for name in ("owner", *STUDENTS, *[n for n in STRONG if n in owner["psnr"]["a"]], *owner["references"]):
            quality.append(f"| {owner_name} | {name} | " + " | ".join(
                f"{owner['psnr'][s][name]:.2f}" for s in SETS) + " |")
        best = max(owner["negatives"], key=lambda n: owner["psnr"]["held_out"][n])
        quality.append(f"| {owner_name} | best negative ({best}) | " + " | ".join(
            f"{owner['psnr'][s][best]:.2f}" for s in SETS) + " |")
    cost = ["| owner | probes per set | owner s (3 sets) | median suspect s (3 sets) | scoring s per suspect and set |",
            "|---|---|---|---|---|"]
    for owner_name, owner in report.items():
        seconds = owner["seconds"]
        if seconds:
            suspects = [v for k, v in seconds.items() if k != "owner" and not k.startswith("ref:")]
            cost.append(f"| {owner_name} | {6 * CROPS} | {seconds.get('owner', float('nan')):.2f} | "
                        f"{np.median(suspects) if suspects else float('nan'):.2f} | {owner['score_seconds']:.3f} |")
    text = [f"# Distillation probes (issue 12 item 5), {datetime.date.today().isoformat()}", "",
            f"`{command}` (machine with 2 cores shared with another engineer's jobs: seconds are indicative; "
            "every model run with one thread).  What is measured and how: the docstring of "
            "`models/distill_probes.py`.  Probes: "
            f"{CROPS} seeded {SIZE}x{SIZE} crops of each of the 6 images of a set, degraded as the owner's task "
            "(Gaussian noise at the owner's sigma, or average pooling by its scale).", "",
            "## Overview", "", *overview, "", "## Restoration quality (PSNR, dB, outputs clipped to [0,1])", "",
            *quality, "", "## Cost", "", *cost, "", "## Per statistic", tables, ""]
    target.write_text("\n".join(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tpw"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/distill_probes"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train", type=int, default=0, metavar="STEPS",
                        help="first train converged students (STEPS Adam steps each) into CACHE/students")
    parser.add_argument("--same-architecture", nargs="*", default=[o for o in OWNERS if OWNERS[o].kind != "noise"],
                        help="owners that also get a same-architecture converged student (default: the SR owners; "
                             "a DnCNN-17 student costs about 1 s a step on one thread)")
    parser.add_argument("--third-party", type=Path, default=Path("../shared/third_party"),
                        help="the owners' weights (only to build same-architecture students)")
    parser.add_argument("--out", type=Path, default=Path("models/benchmark_results/real/distill_probes.md"))
    parser.add_argument("--rescore", action="store_true", help="write the report from CACHE/report.json (no model run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rescore:
        write(json.loads((args.cache / "report.json").read_text()), args.out,
              f"python -m models.distill_probes --work {args.work} --threads {args.threads} --train {args.train}")
        return
    if args.train:
        for owner_name, task in OWNERS.items():
            folder = args.cache / "students" / safe_name(owner_name)
            teacher = args.work / "attacks" / safe_name(owner_name) / "plain.onnx"
            for same, name in zip((True, False), STRONG, strict=True):
                if (same and owner_name not in args.same_architecture) or (folder / f"{name}.onnx").is_file():
                    continue
                started = time.perf_counter()
                student(owner_name, task, teacher, same, folder / f"{name}.onnx", args.train, args.third_party)
                print(f"trained {owner_name} {name} in {time.perf_counter() - started:.0f} s", flush=True)
    report = measure(args.work, args.cache, args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    (args.cache / "report.json").write_text(json.dumps(report, indent=1))
    trained = f" --train {args.train}" if args.train else ""
    write(report, args.out, f"python -m models.distill_probes --work {args.work} --threads {args.threads}{trained}")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
