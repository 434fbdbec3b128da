"""PaddlePaddle twins of :mod:`.torch_nets` for the architectures found in Paddle weight files (written here).

Same constructor arguments, same layer names (Paddle's own suffixes: BatchNorm's running
statistics are `_mean` / `_variance`), same maths, so one detected layout builds either
framework's model.  Images in [0, 1], NCHW; the restored image is returned.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import paddle
from paddle import nn


class DnCNN(nn.Layer):
    """DnCNN: conv-(BN)-ReLU stack predicting the noise; returns x - noise (see torch_nets.DnCNN)."""

    def __init__(self, channels: int = 1, depth: int = 17, width: int = 64, batch_norm: bool = True,
                 bias: bool = True,
                 padding_mode: Literal["zeros", "constant", "reflect", "replicate", "circular"] = "zeros"):
        super().__init__()
        conv = partial(nn.Conv2D, kernel_size=3, padding=1, padding_mode=padding_mode)
        layers: list[nn.Layer] = [conv(channels, width, bias_attr=None if bias else False), nn.ReLU()]
        for _ in range(depth - 2):
            layers.append(conv(width, width, bias_attr=None if bias and not batch_norm else False))
            if batch_norm:
                layers.append(nn.BatchNorm2D(width))
            layers.append(nn.ReLU())
        layers.append(conv(width, channels, bias_attr=None if bias else False))
        self.body = nn.Sequential(*layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x - self.body(x)


class ESPCN(nn.Layer):
    """ESPCN with tanh activations; clips to [0, 1] when `clip` (see torch_nets.ESPCN)."""

    def __init__(self, scale: int = 2, channels: int = 3, width: int = 64, clip: bool = True):
        super().__init__()
        self.conv_1 = nn.Conv2D(channels, width, 5, padding=2)
        self.conv_2 = nn.Conv2D(width, width // 2, 3, padding=1)
        self.conv_3 = nn.Conv2D(width // 2, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.clip = clip

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.shuffle(self.conv_3(paddle.tanh(self.conv_2(paddle.tanh(self.conv_1(x))))))
        return paddle.clip(y, 0.0, 1.0) if self.clip else y
