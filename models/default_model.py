"""Write the bundled default model, models/zoo/default.onnx, from a fixed seed.

Run: python -m models.default_model

A small RGB DnCNN (8 layers, 32 channels, dynamic H/W) trained here for Gaussian
denoising (sigma 25) on scikit-image's sample images, so that README's first
command fingerprints a real, working model without a download.  Its seed and
training images differ from the bundled reference models', so it is independent
of them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.torch_archs import DnCNN
from models.training import Task, psnr, train

DEFAULT = Path(__file__).parent / "zoo" / "default.onnx"
TASK = Task("noise", 3, sigma=25 / 255)


def main() -> None:
    torch.manual_seed(0)
    net = train(DnCNN(channels=3, depth=8, width=32), TASK, "a", steps=600, seed=0)
    DEFAULT.parent.mkdir(exist_ok=True)
    torch.onnx.export(net, (torch.rand(1, 3, 64, 64),), str(DEFAULT), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["restored"],
                      dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "restored": {0: "n", 2: "h", 3: "w"}})
    print(f"wrote {DEFAULT}: {psnr(net, TASK):.2f} dB held-out PSNR")


if __name__ == "__main__":
    main()
