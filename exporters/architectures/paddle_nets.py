"""PaddlePaddle definitions of architectures verifier exports from .pdparams files (written here).

The DnCNN is the Paddle port of :class:`exporters.architectures.torch_nets.DnCNN`: NCHW and OIHW
kernels like torch, zero padding, BatchNorm2D with epsilon 1e-5, output = input - predicted
noise.  Its state_dict names follow torch's (``body.N.weight``, ``body.N.bias``), except that
Paddle calls BatchNorm's running statistics ``_mean`` and ``_variance``.
"""

from __future__ import annotations

import paddle
from paddle import nn

BN_EPSILON = 1e-5


class DnCNN(nn.Layer):
    """DnCNN in Paddle; `bias` as in the torch definition (BN replaces the middle convs' bias)."""

    def __init__(self, channels: int = 1, depth: int = 17, width: int = 64, batch_norm: bool = True,
                 bias: bool = True):
        super().__init__()
        layers: list[nn.Layer] = []
        for index in range(depth):
            outer = index in (0, depth - 1)
            has_bias = bias and (outer or not batch_norm)
            layers.append(nn.Conv2D(channels if index == 0 else width, channels if index == depth - 1 else width, 3,
                                    padding=1, bias_attr=None if has_bias else False))
            if batch_norm and not outer:
                layers.append(nn.BatchNorm2D(width, epsilon=BN_EPSILON))
            if index < depth - 1:
                layers.append(nn.ReLU())
        self.body = nn.Sequential(*layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x - self.body(x)
