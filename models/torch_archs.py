"""PyTorch definitions of the restoration architectures in our zoo (written here).

Imported only by `models/` scripts and tests that need torch; `verifier` never does.
"""

from __future__ import annotations

import torch
from torch import nn


class DnCNN(nn.Module):
    """DnCNN (Zhang et al. 2017): conv-BN-ReLU stack predicting the noise residual."""

    def __init__(self, channels: int = 3, depth: int = 17, width: int = 64, batch_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers.append(nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)
