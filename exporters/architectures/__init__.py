"""Recognise third-party weight layouts: which architecture, which hyper-parameters, which names.

Each :class:`Layout` looks at a state_dict's names and shapes only (never runs
anything), and says how to build our own definition (:mod:`.torch_nets`) and how to
rename the file's tensors onto it.  `verifier export FILE` uses the first layout
that matches; `--arch` still takes the user's own code.  The names are torch's
(:mod:`.torch_nets`); :mod:`.paddle_nets` defines the same architectures under the same
names for Paddle files, whose BatchNorm statistics are `_mean` / `_variance`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from exporters.base import ExportError, ExportRequest, load_factory
from verifier.errors import first_line

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class Detected:
    """An architecture recognised in a state_dict."""

    name: str  # 'module:factory' of our definition
    kwargs: dict
    rename: Callable[[str], str]
    missing: tuple[str, ...] = ()  # hyper-parameters the weights do not determine
    note: str = ""  # what the user must know to use the model (input it expects, choices made)


def _numbered(shapes: Shapes, pattern: str) -> list[int]:
    """The numbers N for which `pattern` (a regex with one (\\d+) group) matches a tensor name, sorted."""
    compiled = re.compile(pattern)
    return sorted({int(m.group(1)) for key in shapes if (m := compiled.match(key))})


def _indexed(shapes: Shapes, prefix: str) -> list[int]:
    """Indices N of the '<prefix>.N.weight' tensors (layers of an nn.Sequential)."""
    return _numbered(shapes, rf"^{re.escape(prefix)}\.(\d+)\.weight$")


def _shuffle_factor(out_channels: int, channels: int) -> int | None:
    """The pixel-shuffle factor f of a conv producing channels * f * f maps, or None."""
    factor = round((out_channels / channels) ** 0.5)
    return factor if factor * factor * channels == out_channels else None


def _dncnn(shapes: Shapes) -> Detected | None:
    """SaoYan and sldyns' Paddle port (dncnn.N, convs without bias, BN), KAIR (model.N, convs with
    bias, no BN), cszn's pickled training module (dncnn.N, bias on the first conv only, BN) and our
    own definitions (body.N: torch_nets.DnCNN, the zoo's DnCNN and the framework ports)."""
    for prefix in ("dncnn", "model", "body"):
        indices = _indexed(shapes, prefix)
        convs = [i for i in indices if len(shapes[f"{prefix}.{i}.weight"]) == 4]
        if len(convs) < 3 or set(shapes) - {k for k in shapes if k.startswith(prefix + ".")}:
            continue
        first, last = shapes[f"{prefix}.{convs[0]}.weight"], shapes[f"{prefix}.{convs[-1]}.weight"]
        if first[2:] != (3, 3) or last[0] != first[1]:
            continue
        batch_norm = any(f"{prefix}.{i}.{stat}" in shapes for i in indices for stat in ("running_mean", "_mean"))
        kwargs = {"channels": first[1], "depth": len(convs), "width": first[0], "batch_norm": batch_norm,
                  "bias": f"{prefix}.{convs[0]}.bias" in shapes}
        if (f"{prefix}.{convs[-1]}.bias" in shapes) != kwargs["bias"]:
            kwargs["last_bias"] = not kwargs["bias"]

        def rename(key: str, p: str = prefix) -> str:
            return "body." + key.removeprefix(p + ".")

        return Detected("exporters.architectures.torch_nets:DnCNN", kwargs, rename)
    return None


#: ESPCN's three convs in yjn870's layout (XDpaddle's Paddle port keeps it): tanh between them,
#: no clip in the model.
_ESPCN_PARTS = {"first_part.0.": "conv_1.", "first_part.2.": "conv_2.", "last_part.0.": "conv_3."}


def _espcn_part(key: str) -> str:
    """yjn870's name of an ESPCN tensor -> ours ('first_part.2.bias' -> 'conv_2.bias')."""
    part, _, tensor = key.rpartition(".")
    return _ESPCN_PARTS[part + "."] + tensor


def _espcn(shapes: Shapes) -> Detected | None:
    """conv_1 (5x5) -> conv_2 (3x3) -> conv_3 (C*s*s) and PixelShuffle: Nhat-Thanh (conv_i, output
    clipped to [0, 1], trained on YCbCr images) and yjn870 / XDpaddle's Paddle port (first_part /
    last_part, unclipped, luminance)."""
    tensors = {f"{part}{p}" for part in _ESPCN_PARTS.values() for p in ("weight", "bias")}
    rename: Callable[[str], str]
    if set(shapes) == tensors:
        clip, rename = True, str
    elif set(shapes) == {f"{part}{p}" for part in _ESPCN_PARTS for p in ("weight", "bias")}:
        clip, rename = False, _espcn_part
        shapes = {rename(key): shape for key, shape in shapes.items()}
    else:
        return None
    channels = shapes["conv_1.weight"][1]
    scale = _shuffle_factor(shapes["conv_3.weight"][0], channels)
    if scale is None:
        return None
    return Detected("exporters.architectures.torch_nets:ESPCN",
                    {"scale": scale, "channels": channels, "width": shapes["conv_1.weight"][0], "clip": clip,
                     **({"ycbcr": True} if clip and channels == 3 else {})}, rename)


def _fsrcnn(shapes: Shapes) -> Detected | None:
    """Nhat-Thanh (feature_extract, map_i, deconv; trained on YCbCr images) and yjn870 (first_part / mid_part /
    last_part; luminance).

    The transposed conv's stride (the scale) is not in the weights: it is reported missing.
    """
    if "feature_extract.weight" in shapes and "deconv.weight" in shapes:
        maps = sorted(int(m.group(1)) for key in shapes if (m := re.match(r"^map_(\d+)\.weight$", key)))
        d, channels = shapes["feature_extract.weight"][:2]
        kwargs = {"channels": channels, "d": d, "s": shapes["shrink.weight"][0], "m": len(maps),
                  "act_between_maps": False, "clip": True, "ycbcr": channels == 3}

        def rename(key: str) -> str:
            if (found := re.match(r"^map_(\d+)\.(.*)$", key)):
                return f"maps.{int(found.group(1)) - 1}.{found.group(2)}"
            return key.replace("activation_3.", "map_activations.0.")

        return Detected("exporters.architectures.torch_nets:FSRCNN", kwargs, rename, ("scale",))
    if "first_part.0.weight" in shapes and "last_part.weight" in shapes:
        mids = _indexed(shapes, "mid_part")
        convs = [i for i in mids if len(shapes[f"mid_part.{i}.weight"]) == 4]
        d, channels = shapes["first_part.0.weight"][:2]
        kwargs = {"channels": channels, "d": d, "s": shapes["mid_part.0.weight"][0], "m": len(convs) - 2,
                  "act_between_maps": True, "clip": False}
        names = ["shrink", "activation_2"]
        names += [f"{kind}.{i}" for i in range(kwargs["m"]) for kind in ("maps", "map_activations")]
        names += ["expand", "activation_4"]

        def rename(key: str) -> str:
            if key.startswith("first_part."):
                return key.replace("first_part.0.", "feature_extract.").replace("first_part.1.", "activation_1.")
            if key.startswith("last_part."):
                return key.replace("last_part.", "deconv.")
            index, rest = key.removeprefix("mid_part.").split(".", 1)
            return f"{names[int(index)]}.{rest}"

        return Detected("exporters.architectures.torch_nets:FSRCNN", kwargs, rename, ("scale",))
    return None


def _imdn(shapes: Shapes) -> Detected | None:
    """Zheng222's IMDN (IMDB1..6, x2/x3/x4) and IMDN_AS (two stride-2 convs first: same-size, any scale)."""
    blocks = _numbered(shapes, r"^IMDB(\d+)\.c1\.weight$")
    if not blocks or "upsampler.0.weight" not in shapes:
        return None
    same_size = "fea_conv.2.weight" in shapes
    first = shapes.get("fea_conv.0.weight" if same_size else "fea_conv.weight")
    factor = first and _shuffle_factor(shapes["upsampler.0.weight"][0], first[1])
    if first is None or not factor or (same_size and factor != 4):
        return None
    kwargs = {"channels": first[1], "width": first[0], "blocks": len(blocks)}
    kwargs.update({"same_size": True} if same_size else {"scale": factor})
    note = "same-size (IMDN_AS): input is the upscaled image, height and width divisible by 4" if same_size else ""

    def rename(key: str) -> str:
        if (found := re.match(r"^IMDB(\d+)\.(.*)$", key)):
            return f"blocks.{int(found.group(1)) - 1}.{found.group(2)}"
        return re.sub(r"^fea_conv\.(weight|bias)$", r"fea_conv.0.\1", key)

    return Detected("exporters.architectures.torch_nets:IMDN", kwargs, rename, note=note)


def _imdn_rtc(shapes: Shapes) -> Detected | None:
    """Zheng222's IMDN_RTC: one Sequential 'model' (conv, shortcut over blocks + 1x1 conv, upsampling conv)."""
    blocks = _numbered(shapes, r"^model\.1\.sub\.(\d+)\.c1\.weight$")
    if not blocks or "model.0.weight" not in shapes or "model.2.weight" not in shapes:
        return None
    channels, width = shapes["model.0.weight"][1], shapes["model.0.weight"][0]
    scale = _shuffle_factor(shapes["model.2.weight"][0], channels)
    if scale is None:
        return None

    def rename(key: str) -> str:
        if key.startswith("model.0."):
            return key.replace("model.0.", "fea_conv.")
        if key.startswith("model.2."):
            return key.replace("model.2.", "upsampler.0.")
        index, rest = key.removeprefix("model.1.sub.").split(".", 1)
        return f"LR_conv.{rest}" if int(index) == len(blocks) else f"blocks.{index}.{rest}"

    return Detected("exporters.architectures.torch_nets:IMDNRTC",
                    {"scale": scale, "channels": channels, "width": width, "blocks": len(blocks)}, rename)


def _imdn_rte(shapes: Shapes) -> Detected | None:
    """Zheng222's IMDN_RTE: block1..6 of six bias-free convs at half resolution, pixel shuffle by 2 * scale.

    Unlike the other IMDN checkpoints it was trained on images in [0, 255] (measured: in [0, 1] its
    output is 10 dB from the image, in [0, 255] it beats bicubic).
    """
    blocks = _numbered(shapes, r"^block(\d+)\.c7\.weight$")
    if not blocks or "fea_conv.0.weight" not in shapes or "upsampler.0.weight" not in shapes:
        return None
    channels, width = shapes["fea_conv.0.weight"][1], shapes["fea_conv.0.weight"][0]
    factor = _shuffle_factor(shapes["upsampler.0.weight"][0], channels)
    if factor is None or factor % 2:
        return None

    def rename(key: str) -> str:
        found = re.match(r"^block(\d+)\.(.*)$", key)
        return f"blocks.{int(found.group(1)) - 1}.{found.group(2)}" if found else key

    return Detected("exporters.architectures.torch_nets:IMDNRTE",
                    {"scale": factor // 2, "channels": channels, "width": width, "blocks": len(blocks),
                     "pixel_max": 255.0}, rename, note="height and width must be even")


def _srcnn(shapes: Shapes) -> Detected | None:
    """Nhat-Thanh's SRCNN (patch_extraction, nonlinear_map, recon; 9-k-5, trained on YCbCr images)."""
    layers = ("patch_extraction", "nonlinear_map", "recon")
    if set(shapes) != {f"{layer}.{p}" for layer in layers for p in ("weight", "bias")}:
        return None
    first, middle, last = (shapes[f"{layer}.weight"] for layer in layers)
    kwargs = {"channels": first[1], "kernels": (first[2], middle[2], last[2]), "widths": (first[0], middle[0]),
              "ycbcr": first[1] == 3}
    return Detected("exporters.architectures.torch_nets:SRCNN", kwargs, lambda key: key,
                    note="same-size: input is the bicubic-upscaled low-resolution image")


def _pan(shapes: Shapes) -> Detected | None:
    """zhaohengyuan1's PAN: conv_first, SCPA_trunk.N, trunk_conv, upconv/att/HRconv 1 (and 2 for x4), conv_last.

    x2 and x3 files have identical tensors (the scale is only the interpolation factor): the
    scale is reported missing unless the second upsampling stage (x4) is present.
    """
    blocks = _numbered(shapes, r"^SCPA_trunk\.(\d+)\.conv3\.weight$")
    if not blocks or "conv_first.weight" not in shapes or "upconv1.weight" not in shapes:
        return None
    width, channels = shapes["conv_first.weight"][:2]
    kwargs = {"channels": channels, "width": width, "up_width": shapes["upconv1.weight"][0], "blocks": len(blocks)}

    def rename(key: str) -> str:
        found = re.match(r"^(upconv|att|HRconv)([12])\.(?:conv\.)?(.*)$", key)
        return f"up.{int(found.group(2)) - 1}.{found.group(1)}.{found.group(3)}" if found else key

    if "upconv2.weight" in shapes:
        return Detected("exporters.architectures.torch_nets:PAN", {**kwargs, "scale": 4}, rename)
    return Detected("exporters.architectures.torch_nets:PAN", kwargs, rename, ("scale",))


def _carn_m(shapes: Shapes) -> Detected | None:
    """nmhkahn's CARN-M (multi-scale): b1..b3 cascading blocks sharing one grouped residual block each,
    upsample.up2/up3/up4 all in one file; x2 unless --arch-kwargs chooses 3 or 4."""
    needed = ("sub_mean.shifter.weight", "entry.weight", "b1.b1.body.0.weight", "upsample.up2.body.0.weight",
              "upsample.up3.body.0.weight", "upsample.up4.body.0.weight")
    if any(key not in shapes for key in needed):
        return None
    width = shapes["entry.weight"][0]
    groups = width // shapes["b1.b1.body.0.weight"][1]

    def rename(key: str) -> str:
        key = key.replace(".shifter.", ".")
        if (found := re.match(r"^b(\d+)\.c(\d+)\.body\.(.*)$", key)):
            return f"blocks.{int(found.group(1)) - 1}.c.{int(found.group(2)) - 1}.{found.group(3)}"
        if (found := re.match(r"^b(\d+)\.(.*)$", key)):
            return f"blocks.{int(found.group(1)) - 1}.{found.group(2)}"
        if (found := re.match(r"^c(\d+)\.body\.(.*)$", key)):
            return f"c.{int(found.group(1)) - 1}.{found.group(2)}"
        if (found := re.match(r"^upsample\.up(\d)\.body\.(.*)$", key)):
            return f"up.{found.group(1)}.{found.group(2)}"
        return key

    return Detected("exporters.architectures.torch_nets:CARNM", {"scale": 2, "width": width, "groups": groups},
                    rename, note="the file holds x2, x3 and x4 upsamplers; --arch-kwargs '{\"scale\": N}' "
                                 "picks one, x2 when not given")


def _vdsr(shapes: Shapes) -> Detected | None:
    """twtygqyy's VDSR: input, residual_layer.N.conv, output (bias-free), plus the input."""
    middle = _numbered(shapes, r"^residual_layer\.(\d+)\.conv\.weight$")
    if not middle or "input.weight" not in shapes or "output.weight" not in shapes:
        return None
    width, channels = shapes["input.weight"][:2]
    depth = len(middle) + 2

    def rename(key: str) -> str:
        if key.startswith("input."):
            return key.replace("input.", "body.0.")
        if key.startswith("output."):
            return key.replace("output.", f"body.{2 * (depth - 1)}.")
        index, rest = key.removeprefix("residual_layer.").split(".", 1)
        return f"body.{2 * (int(index) + 1)}.{rest.removeprefix('conv.')}"

    return Detected("exporters.architectures.torch_nets:VDSR", {"channels": channels, "depth": depth, "width": width},
                    rename, note="same-size: input is the bicubic-upscaled luminance (Y) image")


def _sub_pixel(shapes: Shapes) -> Detected | None:
    """The PyTorch examples' super-resolution net (conv1 5x5, conv2, conv3, conv4 -> C*s*s, pixel shuffle)."""
    if set(shapes) != {f"conv{i}.{p}" for i in (1, 2, 3, 4) for p in ("weight", "bias")}:
        return None
    width, channels = shapes["conv1.weight"][:2]
    scale = _shuffle_factor(shapes["conv4.weight"][0], channels)
    if scale is None or shapes["conv1.weight"][2:] != (5, 5):
        return None
    return Detected("exporters.architectures.torch_nets:SubPixelCNN",
                    {"scale": scale, "channels": channels, "width": width}, lambda key: key,
                    note="luminance (Y) input" if channels == 1 else "")


LAYOUTS: tuple[Callable[[Shapes], Detected | None], ...] = (_dncnn, _espcn, _fsrcnn, _imdn, _imdn_rtc, _imdn_rte,
                                                            _srcnn, _pan, _carn_m, _vdsr, _sub_pixel)


def scale_from_name(stem: str) -> int | None:
    """'FSRCNN-x3', 'fsrcnn_x4', 'PANx2_DF2K' -> 3, 4, 2: authors name files by their scale."""
    found = re.search(r"x([2-8])(?![0-9])", stem, re.IGNORECASE)
    return int(found.group(1)) if found else None


def detect(shapes: Shapes) -> Detected | None:
    """The first known layout matching these tensor names and shapes."""
    for layout in LAYOUTS:
        found = layout(shapes)
        if found is not None:
            return found
    return None


def recognise(weights: Mapping, source: Path, overrides: Mapping | None = None) -> tuple[str, dict, dict, str]:
    """(our 'module:factory', its kwargs, the weights renamed onto it, a note for the user) for a file's
    named arrays.

    `overrides` (--arch-kwargs) replace what was detected (e.g. which scale of a multi-scale file);
    hyper-parameters neither gives come from the file name (authors name files by their scale), or
    the error says which --arch-kwargs to pass.
    """
    found = detect({name: tuple(array.shape) for name, array in weights.items()})
    if found is None:
        raise ExportError(f"{source} holds weights of an architecture verifier does not know: "
                          "give it with --arch module:factory")
    kwargs = {**found.kwargs, **(overrides or {})}
    for name in [name for name in found.missing if name not in kwargs]:
        value = scale_from_name(source.stem) if name == "scale" else None
        if value is None:
            raise ExportError(f"{found.name} needs '{name}', which the weights do not store: "
                              f"pass --arch-kwargs '{{\"{name}\": ...}}'")
        kwargs[name] = value
    return found.name, kwargs, {found.rename(key): array for key, array in weights.items()}, found.note


def check_names(expected: Shapes, weights: Mapping, arch: str) -> None:
    """Fail on the first tensor the architecture needs and the file lacks, misshapes or adds."""
    for name, shape in expected.items():
        if name not in weights:
            raise ExportError(f"weights lack tensor '{name}' that {arch} needs (shape {list(shape)})")
        if tuple(weights[name].shape) != tuple(shape):
            raise ExportError(f"tensor '{name}' has shape {list(weights[name].shape)} in the file but "
                              f"{list(shape)} in {arch}")
    unused = sorted(set(weights) - set(expected))
    if unused:
        raise ExportError(f"weights have tensor '{unused[0]}' that {arch} does not use")


def described(arch: str, kwargs: Mapping, note: str = "") -> str:
    """'module:factory(k=v, ...)[; note]', the architecture as recorded in the ONNX metadata."""
    description = f"{arch}({', '.join(f'{k}={v!r}' for k, v in sorted(kwargs.items()))})"
    return f"{description}; {note}" if note else description


@dataclass(frozen=True)
class Built:
    """A framework's empty model of the chosen architecture, and the file's weights named for it."""

    model: object  # a torch nn.Module or a paddle nn.Layer, not yet filled
    weights: dict
    arch: str  # 'module:factory'
    description: str  # for the ONNX metadata (see :func:`described`)


def build(weights: Mapping, request: ExportRequest, twin: Callable[[str], str] = str) -> Built:
    """The user's --arch, or the architecture recognised in `weights` (`twin` maps our torch definition to
    the framework's own), built with its keyword arguments; arguments it does not take are one line."""
    arch, kwargs, note = request.arch, request.arch_kwargs or {}, ""
    if arch is None:
        arch, kwargs, weights, note = recognise(weights, request.source, request.arch_kwargs)
        arch = twin(arch)
    try:
        model = load_factory(arch)(**kwargs)
    except (TypeError, ValueError) as exc:  # e.g. an --arch-kwargs name or value the architecture does not take
        raise ExportError(f"cannot build {arch} with {kwargs}: {first_line(exc)}") from exc
    return Built(model, dict(weights), arch, described(arch, kwargs, note))
