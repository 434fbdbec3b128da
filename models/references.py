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

from models.torch_archs import EDSR, ESPCN, FSRCNN, RCAN, DnCNN, UNet
from models.training import Task, export_onnx, psnr, train
from verifier.method.references import BUNDLED

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
    "noise-c1-x1": (Task("noise", 1, sigma=25 / 255), [
        ("dncnn6w32_a", lambda c: DnCNN(channels=c, depth=6, width=32), "a", 111),
        ("dncnn8w24_b", lambda c: DnCNN(channels=c, depth=8, width=24), "b", 112),
        ("unet12_b", lambda c: UNet(channels=c, width=12), "b", 113),
        ("dncnn5w24nobn_a", lambda c: DnCNN(channels=c, depth=5, width=24, batch_norm=False), "a", 114),
    ]),
    "blur-c3-x1": (Task("blur", 3, sigma=1.6), [
        ("dncnn6w32_a", lambda c: DnCNN(channels=c, depth=6, width=32), "a", 121),
        ("unet12_b", lambda c: UNet(channels=c, width=12), "b", 122),
        ("dncnn8w24nobn_b", lambda c: DnCNN(channels=c, depth=8, width=24, batch_norm=False), "b", 123),
        ("unet8_a", lambda c: UNet(channels=c, width=8), "a", 124),
    ]),
    "downsample-c3-x2": (Task("downsample", 3, scale=2), [
        ("espcn32_a", lambda c: ESPCN(scale=2, channels=c, width=32), "a", 131),
        ("edsr24_b", lambda c: EDSR(scale=2, channels=c, width=24, blocks=2), "b", 132),
        ("fsrcnn24_b", lambda c: FSRCNN(scale=2, channels=c, d=24, s=12, m=2), "b", 133),
        ("rcan16_a", lambda c: RCAN(scale=2, channels=c, width=16, groups=1, blocks=2), "a", 134),
    ]),
    "downsample-c3-x4": (Task("downsample", 3, scale=4), [
        ("espcn24_b", lambda c: ESPCN(scale=4, channels=c, width=24), "b", 141),
        ("edsr24_a", lambda c: EDSR(scale=4, channels=c, width=24, blocks=3), "a", 142),
        ("fsrcnn32_b", lambda c: FSRCNN(scale=4, channels=c, d=32, s=12, m=2), "b", 143),
        ("rcan16_b", lambda c: RCAN(scale=4, channels=c, width=16, groups=1, blocks=1), "b", 144),
    ]),
    # x3 and one-channel (luminance) SR: the scales and channels real SR models ship with.
    "downsample-c3-x3": (Task("downsample", 3, scale=3), [
        ("espcn32_a", lambda c: ESPCN(scale=3, channels=c, width=32), "a", 151),
        ("edsr24_b", lambda c: EDSR(scale=3, channels=c, width=24, blocks=2), "b", 152),
        ("fsrcnn24_b", lambda c: FSRCNN(scale=3, channels=c, d=24, s=12, m=2), "b", 153),
    ]),
    "downsample-c1-x2": (Task("downsample", 1, scale=2), [
        ("espcn32_a", lambda c: ESPCN(scale=2, channels=c, width=32), "a", 161),
        ("edsr24_b", lambda c: EDSR(scale=2, channels=c, width=24, blocks=2), "b", 162),
        ("fsrcnn24_b", lambda c: FSRCNN(scale=2, channels=c, d=24, s=12, m=2), "b", 163),
    ]),
    "downsample-c1-x3": (Task("downsample", 1, scale=3), [
        ("espcn32_a", lambda c: ESPCN(scale=3, channels=c, width=32), "a", 171),
        ("edsr24_b", lambda c: EDSR(scale=3, channels=c, width=24, blocks=2), "b", 172),
        ("fsrcnn24_b", lambda c: FSRCNN(scale=3, channels=c, d=24, s=12, m=2), "b", 173),
    ]),
    "downsample-c1-x4": (Task("downsample", 1, scale=4), [
        ("espcn24_b", lambda c: ESPCN(scale=4, channels=c, width=24), "b", 181),
        ("edsr24_a", lambda c: EDSR(scale=4, channels=c, width=24, blocks=3), "a", 182),
        ("fsrcnn32_b", lambda c: FSRCNN(scale=4, channels=c, d=32, s=12, m=2), "b", 183),
    ]),
}
STEPS = 500
#: SR nets learn only the detail bicubic upscaling misses (models.torch_archs.bicubic): they need more
#: steps than the denoisers to beat it, as the zoo's SR sources do.
SR_STEPS = 1500


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
        steps = SR_STEPS if task.kind == "downsample" else STEPS
        net = train(factory(task.channels), task, image_set, steps, seed=seed)
        export_onnx(net, task.channels, path)
        print(f"{folder}/{name}: {psnr(net, task):.2f} dB held-out PSNR", flush=True)


def main() -> None:
    for folder in sys.argv[1:] or sorted(REFERENCE_SETS):
        build(folder)


if __name__ == "__main__":
    main()
