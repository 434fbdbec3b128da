"""PyTorch definitions of the architectures found in third-party weight files (written here).

Parameter names follow one convention per architecture; `exporters.architectures`
maps each known file layout onto it.  Every model takes and returns images in
[0, 1], NCHW, and returns the restored image (not a noise residual).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


class DnCNN(nn.Module):
    """DnCNN: conv-(BN)-ReLU stack predicting the noise; returns x - noise.

    `bias` sets the bias of every conv (BN layers, when present, replace the middle convs' bias);
    `last_bias` overrides it for the last conv (cszn's own training code has none there);
    `padding_mode` is torch's ('circular' for scico's Flax DnCNN).
    """

    def __init__(self, channels: int = 1, depth: int = 17, width: int = 64, batch_norm: bool = True,
                 bias: bool = True, padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros",
                 last_bias: bool | None = None):
        super().__init__()
        conv = partial(nn.Conv2d, kernel_size=3, padding=1, padding_mode=padding_mode)
        layers: list[nn.Module] = [conv(channels, width, bias=bias), nn.ReLU()]
        for _ in range(depth - 2):
            layers.append(conv(width, width, bias=bias and not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
        layers.append(conv(width, channels, bias=bias if last_bias is None else last_bias))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """Full-range BT.601 (JPEG) YCbCr in [0, 1], with the [16, 235] / [16, 240] clips of Nhat-Thanh's code."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.16874 * r - 0.33126 * g + 0.5 * b + 128 / 255
    cr = 0.5 * r - 0.41869 * g - 0.08131 * b + 128 / 255
    return torch.cat([y.clamp(16 / 255, 235 / 255), cb.clamp(16 / 255, 240 / 255), cr.clamp(16 / 255, 240 / 255)], 1)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (without its clips), clipped to [0, 1]."""
    y, cb, cr = x[:, 0:1], x[:, 1:2] - 128 / 255, x[:, 2:3] - 128 / 255
    rgb = torch.cat([y + 1.402 * cr, y - 0.34414 * cb - 0.71414 * cr, y + 1.772 * cb], 1)
    return rgb.clamp(0.0, 1.0)


def in_ycbcr(forward, x: torch.Tensor, enabled: bool) -> torch.Tensor:
    """`forward` applied to `x` in YCbCr and brought back to RGB when `enabled`: for networks trained on
    YCbCr images (Nhat-Thanh's ESPCN, FSRCNN, SRCNN), so the exported model takes RGB like every other."""
    return ycbcr_to_rgb(forward(rgb_to_ycbcr(x))) if enabled else forward(x)


class ESPCN(nn.Module):
    """ESPCN with tanh activations; `clip` clamps the output to [0, 1] (Nhat-Thanh/ESPCN-Pytorch does,
    yjn870's layout leaves it to the caller); `ycbcr`: see :func:`in_ycbcr`."""

    def __init__(self, scale: int = 2, channels: int = 3, width: int = 64, clip: bool = True, ycbcr: bool = False):
        super().__init__()
        self.ycbcr = ycbcr
        self.conv_1 = nn.Conv2d(channels, width, 5, padding=2)
        self.conv_2 = nn.Conv2d(width, width // 2, 3, padding=1)
        self.conv_3 = nn.Conv2d(width // 2, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.clip = clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return in_ycbcr(self._forward, x, self.ycbcr)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(self.conv_3(torch.tanh(self.conv_2(torch.tanh(self.conv_1(x))))))
        return torch.clamp(y, 0.0, 1.0) if self.clip else y


class FSRCNN(nn.Module):
    """FSRCNN: extract, shrink, m mapping convs, expand, transposed-conv upsampling.

    `act_between_maps` puts a PReLU after every mapping conv (yjn870) instead of once after
    the last (Nhat-Thanh); `clip` clamps the output to [0, 1] (Nhat-Thanh); `ycbcr`: see :func:`in_ycbcr`.
    """

    def __init__(self, scale: int = 2, channels: int = 1, d: int = 56, s: int = 12, m: int = 4,
                 act_between_maps: bool = True, clip: bool = False, ycbcr: bool = False):
        super().__init__()
        self.ycbcr = ycbcr
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
        return in_ycbcr(self._forward, x, self.ycbcr)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation_2(self.shrink(self.activation_1(self.feature_extract(x))))
        for index, conv in enumerate(self.maps):
            y = conv(y)
            if len(self.map_activations) > 1:
                y = self.map_activations[index](y)
        if len(self.map_activations) == 1:
            y = self.map_activations[0](y)
        y = self.deconv(self.activation_4(self.expand(y)))
        return torch.clamp(y, 0.0, 1.0) if self.clip else y


def _split(x: torch.Tensor, first: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the first `first` channels, the rest): information distillation keeps one part, refines the other."""
    return x[:, :first], x[:, first:]


class _ContrastAttention(nn.Module):
    """IMDN's contrast-aware channel attention: (std + mean over the image) -> 1x1 conv squeeze -> gate."""

    def __init__(self, width: int, reduction: int = 16):
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(width, width // reduction, 1), nn.ReLU(),
                                     nn.Conv2d(width // reduction, width, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean((2, 3), keepdim=True)
        std = (x - mean).pow(2).mean((2, 3), keepdim=True).sqrt()
        return x * self.conv_du(std + mean)


class IMDBlock(nn.Module):
    """Information multi-distillation block: 4 convs each keeping a quarter of their channels, fused by 1x1.

    `attention` adds the contrast-aware attention before the fusion (IMDN, IMDN_AS); the
    real-time IMDN_RTC block has none.
    """

    def __init__(self, width: int, attention: bool = True):
        super().__init__()
        self.kept = width // 4
        rest = width - self.kept
        self.c1 = nn.Conv2d(width, width, 3, padding=1)
        self.c2 = nn.Conv2d(rest, width, 3, padding=1)
        self.c3 = nn.Conv2d(rest, width, 3, padding=1)
        self.c4 = nn.Conv2d(rest, self.kept, 3, padding=1)
        self.c5 = nn.Conv2d(4 * self.kept, width, 1)
        self.cca = _ContrastAttention(4 * self.kept) if attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept1, rest = _split(F.leaky_relu(self.c1(x), 0.05), self.kept)
        kept2, rest = _split(F.leaky_relu(self.c2(rest), 0.05), self.kept)
        kept3, rest = _split(F.leaky_relu(self.c3(rest), 0.05), self.kept)
        fused = torch.cat([kept1, kept2, kept3, self.c4(rest)], 1)
        return self.c5(self.cca(fused)) + x


class IMDN(nn.Module):
    """IMDN (Hui et al. 2019): conv, `blocks` IMDBs, concat + 1x1 fusion, conv, residual, pixel shuffle.

    `same_size` is IMDN_AS: two stride-2 convs shrink the (already upscaled) input 4x, the pixel
    shuffle restores it, so any scale works with one model (height and width must divide by 4).
    """

    def __init__(self, scale: int = 2, channels: int = 3, width: int = 64, blocks: int = 6, same_size: bool = False):
        super().__init__()
        if same_size:
            self.fea_conv = nn.Sequential(nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.LeakyReLU(0.05),
                                          nn.Conv2d(width, width, 3, stride=2, padding=1))
            shuffle = 4
        else:
            self.fea_conv = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1))
            shuffle = scale
        self.blocks = nn.ModuleList(IMDBlock(width) for _ in range(blocks))
        self.c = nn.Sequential(nn.Conv2d(width * blocks, width, 1), nn.LeakyReLU(0.05))
        self.LR_conv = nn.Conv2d(width, width, 3, padding=1)
        self.upsampler = nn.Sequential(nn.Conv2d(width, channels * shuffle * shuffle, 3, padding=1),
                                       nn.PixelShuffle(shuffle))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.fea_conv(x)
        outputs, y = [], features
        for block in self.blocks:
            y = block(y)
            outputs.append(y)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outputs, 1))) + features)


class IMDNRTC(nn.Module):
    """IMDN_RTC (AI in RTC 2019 winner): conv, IMDBs without attention, 1x1 conv, one residual, pixel shuffle."""

    def __init__(self, scale: int = 2, channels: int = 3, width: int = 12, blocks: int = 5):
        super().__init__()
        self.fea_conv = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*(IMDBlock(width, attention=False) for _ in range(blocks)))
        self.LR_conv = nn.Conv2d(width, width, 1)
        self.upsampler = nn.Sequential(nn.Conv2d(width, channels * scale * scale, 3, padding=1),
                                       nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.fea_conv(x)
        return self.upsampler(features + self.LR_conv(self.blocks(features)))


class IMDBlockLarge(nn.Module):
    """IMDN_RTE's block: six bias-free convs distilling a quarter each, ReLU, 1x1 fusion, residual."""

    def __init__(self, width: int):
        super().__init__()
        self.kept = width // 4
        rest = width - self.kept
        self.c1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(rest, width, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(rest, width, 3, padding=1, bias=False)
        self.c4 = nn.Conv2d(rest, rest, 3, padding=1, bias=False)
        self.c5 = nn.Conv2d(rest - self.kept, rest - self.kept, 3, padding=1, bias=False)
        self.c6 = nn.Conv2d(self.kept, self.kept, 3, padding=1, bias=False)
        self.c7 = nn.Conv2d(6 * self.kept, width, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, rest = [], x
        for conv in (self.c1, self.c2, self.c3, self.c4, self.c5):
            part, rest = _split(F.relu(conv(rest)), self.kept)
            kept.append(part)
        return self.c7(torch.cat([*kept, F.relu(self.c6(rest))], 1)) + x


class IMDNRTE(nn.Module):
    """IMDN_RTE (AI in RTE 2020): conv, stride-2 conv, large IMDBs, 1x1 conv, residual, pixel shuffle by 2*scale.

    Working at half resolution makes it fast; height and width must be even.  `pixel_max` is the
    white level it was trained with (255 for the authors' checkpoint): images in [0, 1] are scaled
    to it and back.
    """

    def __init__(self, scale: int = 2, channels: int = 3, width: int = 20, blocks: int = 6, pixel_max: float = 255.0):
        super().__init__()
        self.pixel_max = pixel_max
        self.fea_conv = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False))
        self.blocks = nn.Sequential(*(IMDBlockLarge(width) for _ in range(blocks)))
        self.LR_conv = nn.Conv2d(width, width, 1, bias=False)
        self.upsampler = nn.Sequential(nn.Conv2d(width, channels * 4 * scale * scale, 3, padding=1),
                                       nn.PixelShuffle(2 * scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.fea_conv(x * self.pixel_max)
        return self.upsampler(self.LR_conv(self.blocks(features)) + features) / self.pixel_max


class SRCNN(nn.Module):
    """SRCNN (Dong et al.): three unpadded convs on a bicubic-upscaled image, so the output is same-size.

    The authors' convs are 'valid' (the output loses a border of (k1 + k2 + k3 - 3) / 2 pixels);
    here the input is edge-padded by that border first, so the output keeps the input's size and
    equals theirs inside.  `ycbcr`: see :func:`in_ycbcr`.
    """

    def __init__(self, channels: int = 3, kernels: tuple[int, int, int] = (9, 5, 5), widths: tuple[int, int] = (64, 32),
                 ycbcr: bool = False):
        super().__init__()
        k1, k2, k3 = kernels
        self.border = (k1 + k2 + k3 - 3) // 2
        self.patch_extraction = nn.Conv2d(channels, widths[0], k1)
        self.nonlinear_map = nn.Conv2d(widths[0], widths[1], k2)
        self.recon = nn.Conv2d(widths[1], channels, k3)
        self.ycbcr = ycbcr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return in_ycbcr(self._forward, x, self.ycbcr)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pad(x, (self.border,) * 4, mode="replicate")
        return torch.clamp(self.recon(F.relu(self.nonlinear_map(F.relu(self.patch_extraction(y))))), 0.0, 1.0)


class _PixelAttentionConv(nn.Module):
    """PAN's PAConv: a 3x3 conv gated by a sigmoid 1x1-conv attention map, then another 3x3 conv."""

    def __init__(self, width: int):
        super().__init__()
        self.k2 = nn.Conv2d(width, width, 1)
        self.k3 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.k4 = nn.Conv2d(width, width, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k4(self.k3(x) * torch.sigmoid(self.k2(x)))


class SCPA(nn.Module):
    """PAN's self-calibrated block: two half-width branches (plain 3x3, pixel-attention conv), 1x1 fusion, residual."""

    def __init__(self, width: int):
        super().__init__()
        half = width // 2
        self.conv1_a = nn.Conv2d(width, half, 1, bias=False)
        self.conv1_b = nn.Conv2d(width, half, 1, bias=False)
        self.k1 = nn.Sequential(nn.Conv2d(half, half, 3, padding=1, bias=False))
        self.PAConv = _PixelAttentionConv(half)
        self.conv3 = nn.Conv2d(width, width, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.leaky_relu(self.k1(F.leaky_relu(self.conv1_a(x), 0.2)), 0.2)
        b = F.leaky_relu(self.PAConv(F.leaky_relu(self.conv1_b(x), 0.2)), 0.2)
        return self.conv3(torch.cat([a, b], 1)) + x


class _PANUpsample(nn.Module):
    """Nearest-neighbour upsampling, conv, pixel attention (sigmoid 1x1 gate), conv; LeakyReLU after each gate/conv."""

    def __init__(self, width: int, out_width: int, factor: int):
        super().__init__()
        self.factor = factor
        self.upconv = nn.Conv2d(width, out_width, 3, padding=1)
        self.att = nn.Conv2d(out_width, out_width, 1)
        self.HRconv = nn.Conv2d(out_width, out_width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.upconv(F.interpolate(x, scale_factor=self.factor, mode="nearest"))
        y = F.leaky_relu(y * torch.sigmoid(self.att(y)), 0.2)
        return F.leaky_relu(self.HRconv(y), 0.2)


class PAN(nn.Module):
    """PAN (Zhao et al. 2020): conv, SCPA blocks, conv + residual, 1 (x2, x3) or 2 (x4) upsampling stages, conv,
    plus the bilinearly upscaled input."""

    def __init__(self, scale: int = 2, channels: int = 3, width: int = 40, up_width: int = 24, blocks: int = 16):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(channels, width, 3, padding=1)
        self.SCPA_trunk = nn.Sequential(*(SCPA(width) for _ in range(blocks)))
        self.trunk_conv = nn.Conv2d(width, width, 3, padding=1)
        factors = [2, 2] if scale == 4 else [scale]
        self.up = nn.ModuleList(_PANUpsample(width if i == 0 else up_width, up_width, f) for i, f in enumerate(factors))
        self.conv_last = nn.Conv2d(up_width, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv_first(x)
        y = features + self.trunk_conv(self.SCPA_trunk(features))
        for stage in self.up:
            y = stage(y)
        return self.conv_last(y) + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


def _fusion(in_width: int, out_width: int) -> nn.Sequential:
    """CARN's 1x1 conv + ReLU fusing the cascade's concatenation."""
    return nn.Sequential(nn.Conv2d(in_width, out_width, 1), nn.ReLU())


class _EfficientResidual(nn.Module):
    """CARN-M's efficient residual block: two grouped 3x3 convs, a 1x1 conv, ReLU(x + .)."""

    def __init__(self, width: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=groups), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1, groups=groups), nn.ReLU(),
                                  nn.Conv2d(width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


def _cascade(x: torch.Tensor, blocks: list[nn.Module], fusions: nn.ModuleList) -> torch.Tensor:
    """CARN's cascading: after each block, concatenate everything so far and fuse it with a 1x1 conv."""
    stacked, y = x, x
    for block, fuse in zip(blocks, fusions, strict=True):
        stacked = torch.cat([stacked, block(y)], 1)
        y = fuse(stacked)
    return y


class _CascadingBlock(nn.Module):
    """CARN-M's local cascade: one shared efficient residual block applied three times."""

    def __init__(self, width: int, groups: int):
        super().__init__()
        self.b1 = _EfficientResidual(width, groups)
        self.c = nn.ModuleList(_fusion(width * (i + 2), width) for i in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _cascade(x, [self.b1] * 3, self.c)


class CARNM(nn.Module):
    """CARN-M (Ahn et al. 2018), the mobile CARN: mean shift, conv, 3 cascading blocks with global cascading,
    a pixel-shuffle upsampler, conv, mean shift back.

    The authors' file holds upsamplers for x2, x3 and x4 together; all are kept (so the weights
    load strictly) and `scale` picks the one that runs.
    """

    def __init__(self, scale: int = 2, width: int = 64, groups: int = 4):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"CARN-M has upsamplers for scales 2, 3 and 4, not {scale}")
        self.scale = scale
        self.sub_mean = nn.Conv2d(3, 3, 1)
        self.add_mean = nn.Conv2d(3, 3, 1)
        self.entry = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.ModuleList(_CascadingBlock(width, groups) for _ in range(3))
        self.c = nn.ModuleList(_fusion(width * (i + 2), width) for i in range(3))

        def stage(factor: int) -> list[nn.Module]:
            return [nn.Conv2d(width, width * factor * factor, 3, padding=1, groups=groups), nn.ReLU(),
                    nn.PixelShuffle(factor)]

        self.up = nn.ModuleDict({"2": nn.Sequential(*stage(2)), "3": nn.Sequential(*stage(3)),
                                 "4": nn.Sequential(*stage(2), *stage(2))})
        self.exit = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _cascade(self.entry(self.sub_mean(x)), list(self.blocks), self.c)
        return self.add_mean(self.exit(self.up[str(self.scale)](y)))


class VDSR(nn.Module):
    """VDSR (Kim et al. 2016): `depth` bias-free 3x3 convs with ReLU, plus the input (same-size, on a
    bicubic-upscaled luminance image)."""

    def __init__(self, channels: int = 1, depth: int = 20, width: int = 64):
        super().__init__()
        conv = partial(nn.Conv2d, kernel_size=3, padding=1, bias=False)
        layers: list[nn.Module] = [conv(channels, width), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [conv(width, width), nn.ReLU()]
        layers.append(conv(width, channels))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SubPixelCNN(nn.Module):
    """The PyTorch examples' super-resolution net (ESPCN-like): 4 convs with ReLU, pixel shuffle, on luminance."""

    def __init__(self, scale: int = 3, channels: int = 1, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 5, padding=2)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, width // 2, 3, padding=1)
        self.conv4 = nn.Conv2d(width // 2, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))
        return self.shuffle(self.conv4(x))
