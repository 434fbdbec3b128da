"""Measure how far real, independent models go on the behavioural evidence (the strong-model null).

Run: python -m models.behaviour_null [--third-party ../shared/third_party] [--work DIR] [--owners N]
                                     [--method response|paper] [--write]

Real models are strong, and strong models of one task behave alike; the reference models a
fingerprint is calibrated on are small.  This script takes real models of other authors from
the third-party folder (exported as by ``models.weight_null``, sharing its --work folder),
fingerprints up to N owners per task with default options (as a new user would), and verifies
every other model of the same I/O against each, except those of the owner's weight family
(``verifier/nulls/weights.json``): those are copies, not negatives.  Each pair's score is
recorded in the owner's null standard deviations (z).  ``--write`` stores the z-scores in
``verifier/nulls/behaviour-METHOD.json``, which the behavioural evidence of that method must also clear.

``--method paper`` fingerprints the owners with the paper's method (Quan et al.), whose evidence is the
suspect's own critical images: they depend on the settings only, so each suspect is inverted once per
settings and its evidence shared between the owners of its task.  Every suspect's evidence is kept in
WORK/fingerprints/evidence (as the owners' fingerprints are kept), so an interrupted run resumes: the paper
method inverts every model of a task, about a minute each for a 17-layer DnCNN on 2 cores.

The held-out check prints, for each owner, how many of its pairs the null fitted on the other
owners' pairs alone would call significant at the verdict's per-piece rate (0.5%).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from models.weight_null import export_all, safe_name
from verifier.errors import VerifierError
from verifier.method.behaviour import METHODS, MethodName, get_method
from verifier.method.calibration import NULLS, MeasuredNull
from verifier.method.evidence import share

FPR = 0.01


def null_file(method: str) -> Path:
    """Where the measured null of a behavioural method is shipped."""
    return NULLS / f"behaviour-{method}.json"


def _families(exported: dict[str, Path]) -> dict[str, int]:
    """Weight family of every exported model (by its name), from the weight null's record."""
    recorded = json.loads((NULLS / "weights.json").read_text()).get("families", [])
    family = {name: index for index, group in enumerate(recorded) for name in group}
    return {name: family.get(name, len(recorded) + offset) for offset, name in enumerate(sorted(exported))}


def owner_fingerprint(model, path: Path, method: MethodName = "response"):
    """The owner's fingerprint with default options (and `method`), made once and kept at `path` (shared with
    bench_real)."""
    from verifier.api import fingerprint
    from verifier.method import fingerprint_file

    return fingerprint_file.load(path) if path.exists() else fingerprint(model, output=path, method=method)


def fingerprint_path(folder: Path, owner: str, method: MethodName) -> Path:
    """The kept fingerprint of `owner` (response fingerprints keep their earlier names: bench_real shares them)."""
    stem = safe_name(owner)
    return folder / (f"{stem}.vfp" if method == "response" else f"{stem}.{method}.vfp")


def suspect_evidence(folder: Path, fp, model) -> np.ndarray:
    """The suspect's evidence for `fp`, kept in `folder` under a digest of what it depends on (the suspect file,
    the settings, and the owner's data where the method needs it), so owners of one task share it where the
    method allows (``paper``: the suspect's critical images) and an interrupted run resumes."""
    from verifier.method.fingerprint import evidence

    depends = get_method(fp.settings.method).evidence_depends_on(fp)
    key = hashlib.sha256(repr((model.source.sha256, fp.settings, depends)).encode()).hexdigest()[:32]
    path = folder / f"{key}.npy"
    if path.exists():
        return np.load(path)
    found = evidence(fp, model)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, found)
    partial.replace(path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--third-party", type=Path, default=Path("../shared/third_party"))
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "verifier" / "third_party_onnx")
    parser.add_argument("--owners", type=int, default=4, help="owners per task (one per weight family)")
    parser.add_argument("--method", choices=METHODS, default="response")
    parser.add_argument("--write", action="store_true",
                        help="write the z-scores to verifier/nulls/behaviour-METHOD.json")
    args = parser.parse_args()
    from verifier import load_model
    from verifier.method.fingerprint import io_summary, score_evidence

    exported = export_all(args.third_party, args.work)
    family = _families(exported)
    models, groups = {}, defaultdict(list)
    for name, path in sorted(exported.items()):
        try:
            model = load_model(path, threads=2)
        except VerifierError as exc:
            print(f"not loadable: {name}: {exc}")
            continue
        models[name] = model
        groups[(*io_summary(model).values(), model.io.height, model.io.width)].append(name)
    folder = args.work / "fingerprints"
    folder.mkdir(exist_ok=True)
    pairs: list[tuple[str, str, float]] = []
    for key, names in sorted(groups.items(), key=lambda item: str(item[0])):
        owners, seen = [], set()
        for name in names:
            if family[name] not in seen and len(owners) < args.owners:
                owners.append(name)
                seen.add(family[name])
        for owner in owners:
            path = fingerprint_path(folder, owner, args.method)
            try:
                fp = owner_fingerprint(models[owner], path, args.method)
            except VerifierError as exc:
                print(f"task {key}: cannot fingerprint {owner} with default options: {exc}")
                continue
            for suspect in names:
                if family[suspect] == family[owner]:
                    continue
                try:
                    z = fp.calibration.z(score_evidence(fp, suspect_evidence(folder / "evidence", fp, models[suspect])))
                except VerifierError as exc:
                    print(f"  {owner} vs {suspect}: {exc}")
                    continue
                pairs.append((owner, suspect, round(z, 4)))
                print(f"{owner} vs {suspect}: z {z:.2f}", flush=True)
    report(pairs)
    if args.write:
        null_file(args.method).write_text(json.dumps({
            "made_by": "python -m models.behaviour_null --write"
                       + (f" --method {args.method}" if args.method != "response" else "")
                       + (f" --owners {args.owners}" if args.owners != parser.get_default("owners") else ""),
            "unit": "null standard deviations of the owner's fingerprint (z)",
            "scores": [z for _, _, z in pairs],
            "pairs": pairs,
        }, indent=1) + "\n")
        print(f"wrote {null_file(args.method)}")


def report(pairs: list[tuple[str, str, float]]) -> None:
    """The null's summary and the leave-one-owner-out check."""
    from verifier.method.behaviour import MIN_STRONG_NULL_STD

    scores = [z for _, _, z in pairs]
    fitted = MeasuredNull.fit(scores)
    print(f"\n{len(pairs)} independent pairs: z mean {fitted.mean:.2f}, std {fitted.std:.2f}, max {max(scores):.2f}; "
          f"threshold at {share(FPR, 2):g}: z {fitted.threshold(share(FPR, 2)):.2f}")
    for owner in sorted({owner for owner, _, _ in pairs}):
        rest = MeasuredNull.fit([z for o, _, z in pairs if o != owner], MIN_STRONG_NULL_STD)
        own = [z for o, _, z in pairs if o == owner]
        flagged = sum(rest.p_value(z) < share(FPR, 2) for z in own)
        print(f"held out {owner}: {flagged}/{len(own)} pairs significant "
              f"(threshold z {rest.threshold(share(FPR, 2)):.2f})")


if __name__ == "__main__":
    main()
