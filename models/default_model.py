"""Write the bundled default model, models/zoo/default.onnx, from a fixed seed.

Run: python -m models.default_model

A small DnCNN (8 layers, 32 channels, RGB, dynamic H/W) exported with torch's
legacy exporter.  Its weights are seeded, not trained: it exists so that the
README's first command has a model to work on without a download.  The trained
zoo replaces it as the default once it exists.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.torch_archs import DnCNN

DEFAULT = Path(__file__).parent / "zoo" / "default.onnx"


def main() -> None:
    torch.manual_seed(0)
    net = DnCNN(channels=3, depth=8, width=32).eval()
    DEFAULT.parent.mkdir(exist_ok=True)
    torch.onnx.export(net, (torch.rand(1, 3, 64, 64),), str(DEFAULT), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["restored"],
                      dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "restored": {0: "n", 2: "h", 3: "w"}})
    print(f"wrote {DEFAULT}")


if __name__ == "__main__":
    main()
