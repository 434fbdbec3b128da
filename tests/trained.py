"""Tiny denoisers trained here (torch, CPU, seconds each), exported to ONNX and committed.

They give the fingerprint tests real owner / derived / independent relations
without any download: an owner, a copy fine-tuned on other images, models
trained independently from other seeds, and reference models for calibration.
The ONNX files live in tests/data/trained (150 KB), so the framework-free tests
need neither torch nor the minute of training; `python tests/trained.py`
trains them again and rewrites that folder.  :func:`fingerprint` is the quick
fingerprint the tests make of them.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: the repository's packages

from verifier import load_model
from verifier.method.degradation import Degradation
from verifier.method.fingerprint import Fingerprint, Settings, create
from verifier.method.inversion import RECIPES

#: The committed models; names are those build() returns.
COMMITTED = Path(__file__).parent / "data" / "trained"
STEPS = 150
#: The fast recipe cut to 10 evaluations on 32x32 images: enough for these models' verdicts.
FAST = dataclasses.replace(RECIPES["fast"], evaluations=10, size=32)
NOISE = Degradation("noise", sigma=25 / 255)
REFERENCES = ("ref_0", "ref_1", "ref_2")


def committed() -> dict[str, Path]:
    """The committed models by name (see build)."""
    names = ["owner", "finetuned", "independent", *REFERENCES]
    return {"owner_state_dict": COMMITTED / "owner.pt", **{name: COMMITTED / f"{name}.onnx" for name in names}}


def build(folder: Path) -> dict[str, Path]:
    """owner, finetuned (owner + steps on image set b), independent, and ref_0..ref_2, as ONNX files;
    owner_state_dict: the owner's torch state_dict (for tests that re-express its weights)."""
    import torch

    from models.torch_archs import DnCNN
    from models.training import Task, export_onnx, train

    def seeded_net(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return DnCNN(channels=1, depth=4, width=16)

    task = Task("noise", 1, sigma=25 / 255)
    with torch.random.fork_rng():
        torch.set_num_threads(2)
        owner = train(seeded_net(0), task, "a", STEPS, seed=0, batch=8, patch=32)
        nets = {"owner": owner,
                "finetuned": train(copy.deepcopy(owner), task, "b", STEPS // 3, seed=10, lr=2e-4, batch=8, patch=32),
                "independent": train(seeded_net(1), task, "a", STEPS, seed=1, batch=8, patch=32)}
        for index, image_set in enumerate("abb"):
            nets[f"ref_{index}"] = train(seeded_net(2 + index), task, image_set, STEPS, seed=2 + index,
                                         batch=8, patch=32)
        torch.save(owner.state_dict(), folder / "owner.pt")
    return {"owner_state_dict": folder / "owner.pt",
            **{name: export_onnx(net, 1, folder / f"{name}.onnx") for name, net in nets.items()}}


def fingerprint(owner: Path, models: dict[str, Path], method: str = "response") -> Fingerprint:
    """`owner`'s fingerprint with the quick settings, calibrated against the trained reference models."""
    settings = Settings(method, FAST, NOISE, (0, 1, 2), threads=2)
    return create(load_model(owner, threads=2), [load_model(models[r], threads=2) for r in REFERENCES], settings)


if __name__ == "__main__":
    COMMITTED.mkdir(parents=True, exist_ok=True)
    for name, path in build(COMMITTED).items():
        print(f"{name}: {path} ({path.stat().st_size} bytes)")
