"""Train small restoration models on CPU from images that ship inside scikit-image.

No data can be downloaded, so training and held-out images come from
``skimage.data``.  Two disjoint image sets let the zoo build models "on other
data".  Degradations match :mod:`verifier.method.degradation` (average pooling for SR,
additive Gaussian noise, Gaussian blur) so that fingerprints probe the task the
model was trained for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.torch_archs import bicubic
from verifier.method.degradation import gaussian_kernel

#: skimage.data images by set; "held_out" is never trained on.  Held-out images are textured: on a
#: nearly flat crop (skimage's colorwheel and cell) PSNR measures only noise added in flat regions,
#: and bicubic upscaling reaches 55-59 dB there.  (skimage's `cat` is `chelsea`: never held out.)
IMAGE_SETS = {
    "a": ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick"),
    "b": ("immunohistochemistry", "hubble_deep_field", "coins", "moon", "grass", "gravel"),
    "held_out": ("stereo_motorcycle", "page", "clock", "text", "microaneurysms", "logo"),
}


@dataclass(frozen=True)
class Task:
    """What a model restores: `kind` is 'noise' (sigma in [0, 1] units), 'downsample' (scale) or 'blur'."""

    kind: str
    channels: int
    sigma: float = 0.0
    scale: int = 1

    def degrade(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The model's input for a batch of clean NCHW patches."""
        if self.kind == "noise":
            return clean + self.sigma * torch.randn(clean.shape, generator=generator)
        if self.kind == "downsample":
            return F.avg_pool2d(clean, self.scale)
        if self.kind == "blur":
            kernel = torch.from_numpy(gaussian_kernel(self.sigma))
            weight = kernel.expand(self.channels, 1, *kernel.shape).contiguous()
            return F.conv2d(clean, weight, padding=kernel.shape[0] // 2, groups=self.channels)
        raise ValueError(f"unknown task kind {self.kind}")


def images(set_name: str, channels: int) -> list[np.ndarray]:
    """The set's images as float32 HWC arrays in [0, 1] with `channels` channels."""
    import skimage.color
    import skimage.data

    out = []
    for name in IMAGE_SETS[set_name]:
        image = getattr(skimage.data, name)()
        if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity); the left view
            image = image[0]
        image = np.asarray(image, dtype=np.float32)
        image = image / 255.0 if image.max() > 1 else image
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[..., :3]
        if channels == 1 and image.ndim == 3:
            image = skimage.color.rgb2gray(image).astype(np.float32)
        if channels == 3 and image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        out.append(image.reshape(*image.shape[:2], channels))
    return out


def patches(pool: list[np.ndarray], count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random crops (random flips and 90-degree rotations) as an NCHW tensor."""
    batch = []
    picks = torch.randint(len(pool), (count,), generator=generator).tolist()
    for index in picks:
        image = pool[index]
        top = int(torch.randint(image.shape[0] - size + 1, (1,), generator=generator))
        left = int(torch.randint(image.shape[1] - size + 1, (1,), generator=generator))
        crop = image[top:top + size, left:left + size]
        crop = np.rot90(crop, int(torch.randint(4, (1,), generator=generator)))
        if int(torch.randint(2, (1,), generator=generator)):
            crop = crop[:, ::-1]
        batch.append(np.ascontiguousarray(crop.transpose(2, 0, 1)))
    return torch.from_numpy(np.stack(batch))


def train(net: torch.nn.Module, task: Task, image_set: str, steps: int, seed: int, lr: float = 1e-3,
          batch: int = 16, patch: int = 48, teacher: Callable[[torch.Tensor], torch.Tensor] | None = None,
          ) -> torch.nn.Module:
    """Adam on L2 loss against the clean patch, or against `teacher`'s output (distillation)."""
    generator = torch.Generator().manual_seed(seed)
    pool = images(image_set, task.channels)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    net.train()
    for _ in range(steps):
        clean = patches(pool, batch, patch, generator)
        degraded = task.degrade(clean, generator)
        with torch.no_grad():
            target = clean if teacher is None else teacher(degraded)
        loss = F.mse_loss(net(degraded), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return net.eval()


def psnr(net: Callable[[torch.Tensor], torch.Tensor], task: Task, seed: int = 0, size: int = 96) -> float:
    """Mean PSNR (dB) over centre crops of the held-out images."""
    generator = torch.Generator().manual_seed(seed)
    values = []
    for image in images("held_out", task.channels):
        top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        clean = torch.from_numpy(np.ascontiguousarray(image[top:top + size, left:left + size].transpose(2, 0, 1)))[None]
        with torch.no_grad():
            restored = net(task.degrade(clean, generator)).clamp(0, 1)
        values.append(float(10 * torch.log10(1 / F.mse_loss(restored, clean))))
    return float(np.mean(values))


def baseline_psnr(task: Task) -> float:
    """PSNR of doing nothing (the degraded input; bicubic upscaling for SR): what a model must beat."""
    if task.kind == "downsample":
        return psnr(lambda x: bicubic(x, task.scale), task)
    return psnr(lambda x: x, task)


def export_onnx(net: torch.nn.Module, channels: int, path: Path, fold: bool = True) -> Path:
    """Legacy torch export, opset 17, dynamic H/W; `fold=False` keeps BatchNormalization nodes."""
    torch.onnx.export(net.eval(), (torch.rand(1, channels, 32, 32),), str(path), dynamo=False, opset_version=17,
                      do_constant_folding=fold, input_names=["image"], output_names=["restored"],
                      dynamic_axes={"image": {2: "h", 3: "w"}, "restored": {2: "h", 3: "w"}})
    return path
