"""Tiny denoisers trained in the test session (torch, CPU, seconds each), exported to ONNX.

They give the fingerprint tests real owner / derived / independent relations
without any download: an owner, a copy fine-tuned on other images, models
trained independently from other seeds, and reference models for calibration.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from models.torch_archs import DnCNN
from models.training import Task, export_onnx, train

TASK = Task("noise", 1, sigma=25 / 255)
STEPS = 150


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return DnCNN(channels=1, depth=4, width=16)


def build(folder: Path) -> dict[str, Path]:
    """owner, finetuned (owner + steps on image set b), independent, and ref_0..ref_2, as ONNX files."""
    with torch.random.fork_rng():
        torch.set_num_threads(2)
        owner = train(_net(0), TASK, "a", STEPS, seed=0, batch=8, patch=32)
        nets = {"owner": owner,
                "finetuned": train(copy.deepcopy(owner), TASK, "b", STEPS // 3, seed=10, lr=2e-4, batch=8, patch=32),
                "independent": train(_net(1), TASK, "a", STEPS, seed=1, batch=8, patch=32)}
        for index, image_set in enumerate("abb"):
            nets[f"ref_{index}"] = train(_net(2 + index), TASK, image_set, STEPS, seed=2 + index, batch=8, patch=32)
    return {name: export_onnx(net, 1, folder / f"{name}.onnx") for name, net in nets.items()}
