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


def bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling: the SR nets below add what they learn to it (a global residual, as VDSR does).

    Tiny nets trained for minutes on a handful of images cannot learn the upscaling itself as well as
    bicubic interpolation does (they lost to it on every held-out crop); with the residual they only
    learn the detail it misses.  Exported as an ONNX Resize, which verifier lowers to matrix products.
    """
    return nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def _start_at_bicubic(last: nn.Conv2d | nn.ConvTranspose2d) -> None:
    """Zero the layer that produces the learned detail, so an untrained SR net is bicubic upscaling.

    With a random last layer the detail starts as noise, which short training never fully removes
    from flat regions (about 1 dB lost to bicubic there); from zero, every crop beats bicubic.
    """
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


def randomise_zero_layers(net: nn.Module) -> nn.Module:
    """Random weights in the layers an SR net starts at zero (see `_start_at_bicubic`), for untrained nets
    that stand in for trained ones (gradient checks, timing): otherwise their bodies never reach the output
    and every seed gives the same model."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and not module.weight.any():
                module.reset_parameters()
    return net


class FSRCNN(nn.Module):
    """FSRCNN (Dong et al. 2016): feature extraction, shrink, map, expand, transposed-conv upsampling; plus
    bicubic upscaling of the input (see `bicubic`)."""

    def __init__(self, scale: int = 2, channels: int = 1, d: int = 56, s: int = 12, m: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, d, 5, padding=2), nn.PReLU(d),
                                   nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        self.upsample = nn.ConvTranspose2d(d, channels, 9, stride=scale, padding=4, output_padding=scale - 1)
        _start_at_bicubic(self.upsample)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.body(x)) + bicubic(x, self.scale)


class ESPCN(nn.Module):
    """ESPCN (Shi et al. 2016): convolutions at low resolution, then a sub-pixel (PixelShuffle) layer; plus
    bicubic upscaling of the input (see `bicubic`)."""

    def __init__(self, scale: int = 2, channels: int = 1, width: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 5, padding=2), nn.Tanh(),
            nn.Conv2d(width, width // 2, 3, padding=1), nn.Tanh(),
            nn.Conv2d(width // 2, channels * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)
        _start_at_bicubic(self.body[-1])
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.body(x)) + bicubic(x, self.scale)


def _upsampler(scale: int, width: int) -> nn.Sequential:
    """x2 PixelShuffle stages for powers of two, one stage otherwise (as EDSR/RCAN do)."""
    stages: list[nn.Module] = []
    factors = [2] * (scale.bit_length() - 1) if scale & (scale - 1) == 0 else [scale]
    for factor in factors:
        stages += [nn.Conv2d(width, width * factor * factor, 3, padding=1), nn.PixelShuffle(factor)]
    return nn.Sequential(*stages)


class ResBlock(nn.Module):
    """EDSR residual block: conv-ReLU-conv, scaled residual, no batch norm."""

    def __init__(self, width: int, res_scale: float = 0.1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class EDSR(nn.Module):
    """EDSR-style SR (Lim et al. 2017): residual blocks, global skip, PixelShuffle upsampler; plus bicubic
    upscaling of the input (see `bicubic`)."""

    def __init__(self, scale: int = 2, channels: int = 3, width: int = 32, blocks: int = 4):
        super().__init__()
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)], nn.Conv2d(width, width, 3, padding=1))
        self.tail = nn.Sequential(_upsampler(scale, width), nn.Conv2d(width, channels, 3, padding=1))
        _start_at_bicubic(self.tail[-1])
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        return self.tail(features + self.body(features)) + bicubic(x, self.scale)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: global average pool, bottleneck 1x1 convs, sigmoid gate."""

    def __init__(self, width: int, reduction: int = 8):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, width // reduction, 1),
                                  nn.ReLU(inplace=True), nn.Conv2d(width // reduction, width, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class RCAB(nn.Module):
    """Residual channel-attention block of RCAN."""

    def __init__(self, width: int, reduction: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), ChannelAttention(width, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RCAN(nn.Module):
    """RCAN-style SR (Zhang et al. 2018): residual groups of channel-attention blocks; plus bicubic upscaling
    of the input (see `bicubic`)."""

    def __init__(self, scale: int = 2, channels: int = 3, width: int = 32, groups: int = 2, blocks: int = 2):
        super().__init__()
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.groups = nn.ModuleList(
            nn.Sequential(*[RCAB(width) for _ in range(blocks)], nn.Conv2d(width, width, 3, padding=1))
            for _ in range(groups)
        )
        self.tail = nn.Sequential(_upsampler(scale, width), nn.Conv2d(width, channels, 3, padding=1))
        _start_at_bicubic(self.tail[-1])
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        y = features
        for group in self.groups:
            y = y + group(y)
        return self.tail(y + features) + bicubic(x, self.scale)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping square windows (Swin-style, no shift)."""

    def __init__(self, width: int, heads: int = 2, window: int = 8):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, H, W, C)
        n, h, w, c = x.shape
        k = self.window
        windows = x.reshape(n, h // k, k, w // k, k, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, k * k, c)
        qkv = self.qkv(windows).reshape(-1, k * k, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, key, v = qkv.unbind(0)
        attention = torch.softmax(q @ key.transpose(-2, -1) * (c // self.heads) ** -0.5, dim=-1)
        out = (attention @ v).transpose(1, 2).reshape(-1, k * k, c)
        out = self.proj(out).reshape(n, h // k, w // k, k, k, c).permute(0, 1, 3, 2, 4, 5)
        return out.reshape(n, h, w, c)


class TransformerBlock(nn.Module):
    """Pre-norm window attention and GELU MLP, both residual, on channels-last features."""

    def __init__(self, width: int, heads: int = 2, window: int = 8):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = WindowAttention(width, heads, window)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class WindowTransformer(nn.Module):
    """A small SwinIR-like restorer: conv embedding, window-attention blocks, conv out, global residual.

    Input height and width must be multiples of `window`.
    """

    def __init__(self, channels: int = 3, width: int = 16, blocks: int = 2, heads: int = 2, window: int = 8):
        super().__init__()
        self.embed = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*[TransformerBlock(width, heads, window) for _ in range(blocks)])
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.embed(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.out(features)


class UNet(nn.Module):
    """A two-level UNet restorer: strided-conv downsampling, ConvTranspose and bilinear upsampling, skips.

    Input height and width must be multiples of 4.
    """

    def __init__(self, channels: int = 3, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))

        self.enc1, self.enc2 = block(channels, width), block(width, 2 * width)
        self.down1 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.bottom = block(2 * width, 2 * width)
        self.up2 = nn.ConvTranspose2d(2 * width, 2 * width, 2, stride=2)
        self.dec2 = block(4 * width, width)
        self.dec1 = block(2 * width, width)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.down1(e1))
        d2 = self.dec2(torch.cat([self.up2(self.bottom(self.down2(e2))), e2], dim=1))
        up1 = nn.functional.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False)
        return x + self.out(self.dec1(torch.cat([up1, e1], dim=1)))
