"""Train the reference models bundled with verifier (the default null distribution).

Run: python -m models.references [TASK ...]

Each task gets small models of several architectures, seeds and training sets,
trained here from scikit-image's sample images.  They are independent of every
model in the zoo (their own seeds), which is what a null distribution needs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch

from models.torch_archs import DnCNN, UNet
from models.training import Task, psnr, train
from verifier.references import BUNDLED

# task folder: (task, [(name, factory, image set, seed)])
Factory = Callable[[int], torch.nn.Module]
REFERENCE_SETS: dict[str, tuple[Task, list[tuple[str, Factory, str, int]]]] = {
    "noise-c3-x1": (Task("noise", 3, sigma=25 / 255), [
        ("dncnn6w32_a", lambda c: DnCNN(channels=c, depth=6, width=32), "a", 101),
        ("dncnn8w24_b", lambda c: DnCNN(channels=c, depth=8, width=24), "b", 102),
        ("dncnn6w32nobn_a", lambda c: DnCNN(channels=c, depth=6, width=32, batch_norm=False), "a", 103),
        ("unet12_b", lambda c: UNet(channels=c, width=12), "b", 104),
        ("dncnn5w24_b", lambda c: DnCNN(channels=c, depth=5, width=24), "b", 105),
    ]),
}
STEPS = 500


def build(folder: str) -> None:
    """Train and export one task's reference models (skips files that exist)."""
    task, entries = REFERENCE_SETS[folder]
    out = BUNDLED / folder
    out.mkdir(parents=True, exist_ok=True)
    for name, factory, image_set, seed in entries:
        path = out / f"{name}.onnx"
        if path.exists():
            continue
        torch.manual_seed(seed)
        net = train(factory(task.channels), task, image_set, STEPS, seed=seed)
        torch.onnx.export(net, (torch.rand(1, task.channels, 32, 32),), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["restored"],
                          dynamic_axes={"image": {2: "h", 3: "w"}, "restored": {2: "h", 3: "w"}})
        print(f"{folder}/{name}: {psnr(net, task):.2f} dB held-out PSNR", flush=True)


def main() -> None:
    for folder in sys.argv[1:] or sorted(REFERENCE_SETS):
        build(folder)


if __name__ == "__main__":
    main()
