"""PyTorch definitions of the architectures found in third-party weight files (written here).

Parameter names follow one convention per architecture; `exporters.architectures`
maps each known file layout onto it.  Every model takes and returns images in
[0, 1], NCHW, and returns the restored image (not a noise residual).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn


class DnCNN(nn.Module):
    """DnCNN: conv-(BN)-ReLU stack predicting the noise; returns x - noise.

    `bias` sets the bias of every conv (BN layers, when present, replace the middle convs' bias);
    `padding_mode` is torch's ('circular' for scico's Flax DnCNN).
    """

    def __init__(self, channels: int = 1, depth: int = 17, width: int = 64, batch_norm: bool = True,
                 bias: bool = True, padding_mode: str = "zeros"):
        super().__init__()
        conv = partial(nn.Conv2d, kernel_size=3, padding=1, padding_mode=padding_mode)
        layers: list[nn.Module] = [conv(channels, width, bias=bias), nn.ReLU()]
        for _ in range(depth - 2):
            layers.append(conv(width, width, bias=bias and not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
        layers.append(conv(width, channels, bias=bias))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


class ESPCN(nn.Module):
    """ESPCN with tanh activations; `clip` clamps the output to [0, 1] (Nhat-Thanh/ESPCN-Pytorch
    does, yjn870's layout leaves it to the caller)."""

    def __init__(self, scale: int = 2, channels: int = 3, width: int = 64, clip: bool = True):
        super().__init__()
        self.conv_1 = nn.Conv2d(channels, width, 5, padding=2)
        self.conv_2 = nn.Conv2d(width, width // 2, 3, padding=1)
        self.conv_3 = nn.Conv2d(width // 2, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.clip = clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(self.conv_3(torch.tanh(self.conv_2(torch.tanh(self.conv_1(x))))))
        return torch.clamp(y, 0.0, 1.0) if self.clip else y


class FSRCNN(nn.Module):
    """FSRCNN: extract, shrink, m mapping convs, expand, transposed-conv upsampling.

    `act_between_maps` puts a PReLU after every mapping conv (yjn870) instead of once after
    the last (Nhat-Thanh); `clip` clamps the output to [0, 1] (Nhat-Thanh).
    """

    def __init__(self, scale: int = 2, channels: int = 1, d: int = 56, s: int = 12, m: int = 4,
                 act_between_maps: bool = True, clip: bool = False):
        super().__init__()
        self.feature_extract = nn.Conv2d(channels, d, 5, padding=2)
        self.activation_1 = nn.PReLU(d)
        self.shrink = nn.Conv2d(d, s, 1)
        self.activation_2 = nn.PReLU(s)
        self.maps = nn.ModuleList(nn.Conv2d(s, s, 3, padding=1) for _ in range(m))
        self.map_activations = nn.ModuleList(nn.PReLU(s) for _ in range(m if act_between_maps else 1))
        self.expand = nn.Conv2d(s, d, 1)
        self.activation_4 = nn.PReLU(d)
        self.deconv = nn.ConvTranspose2d(d, channels, 9, stride=scale, padding=4, output_padding=scale - 1)
        self.clip = clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation_2(self.shrink(self.activation_1(self.feature_extract(x))))
        for index, conv in enumerate(self.maps):
            y = conv(y)
            if len(self.map_activations) > 1:
                y = self.map_activations[index](y)
        if len(self.map_activations) == 1:
            y = self.map_activations[0](y)
        y = self.deconv(self.activation_4(self.expand(y)))
        return torch.clamp(y, 0.0, 1.0) if self.clip else y
