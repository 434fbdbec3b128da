"""Recognise third-party weight layouts: which architecture, which hyper-parameters, which names.

Each :class:`Layout` looks at a state_dict's names and shapes only (never runs
anything), and says how to build our own definition (:mod:`.torch_nets`) and how to
rename the file's tensors onto it.  `verifier export FILE` uses the first layout
that matches; `--arch` still takes the user's own code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class Detected:
    """An architecture recognised in a state_dict."""

    name: str  # 'module:factory' of our definition
    kwargs: dict
    rename: Callable[[str], str]
    missing: tuple[str, ...] = ()  # hyper-parameters the weights do not determine


def _indexed(shapes: Shapes, prefix: str) -> list[int]:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.weight$")
    return sorted(int(m.group(1)) for key in shapes if (m := pattern.match(key)))


def _dncnn(shapes: Shapes) -> Detected | None:
    """SaoYan (dncnn.N, convs without bias, BN), KAIR (model.N, convs with bias, no BN) and our own
    :class:`.torch_nets.DnCNN` / zoo DnCNN (body.N, biased outer convs, optional BN)."""
    for prefix in ("dncnn", "model", "body"):
        indices = _indexed(shapes, prefix)
        convs = [i for i in indices if len(shapes[f"{prefix}.{i}.weight"]) == 4]
        if len(convs) < 3 or set(shapes) - {k for k in shapes if k.startswith(prefix + ".")}:
            continue
        first, last = shapes[f"{prefix}.{convs[0]}.weight"], shapes[f"{prefix}.{convs[-1]}.weight"]
        if first[2:] != (3, 3) or last[0] != first[1]:
            continue
        batch_norm = any(f"{prefix}.{i}.running_mean" in shapes for i in indices)
        kwargs = {"channels": first[1], "depth": len(convs), "width": first[0], "batch_norm": batch_norm,
                  "bias": f"{prefix}.{convs[0]}.bias" in shapes}
        return Detected("exporters.architectures.torch_nets:DnCNN", kwargs,
                        lambda key, p=prefix: "body." + key.removeprefix(p + "."))
    return None


def _espcn(shapes: Shapes) -> Detected | None:
    """conv_1 (5x5) -> conv_2 (3x3) -> conv_3 (C*s*s) and PixelShuffle (Nhat-Thanh)."""
    if set(shapes) != {f"conv_{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}:
        return None
    channels, out = shapes["conv_1.weight"][1], shapes["conv_3.weight"][0]
    scale = round((out / channels) ** 0.5)
    if scale * scale * channels != out:
        return None
    return Detected("exporters.architectures.torch_nets:ESPCN",
                    {"scale": scale, "channels": channels, "width": shapes["conv_1.weight"][0]}, lambda key: key)


def _fsrcnn(shapes: Shapes) -> Detected | None:
    """Nhat-Thanh (feature_extract, map_i, deconv) and yjn870 (first_part / mid_part / last_part).

    The transposed conv's stride (the scale) is not in the weights: it is reported missing.
    """
    if "feature_extract.weight" in shapes and "deconv.weight" in shapes:
        maps = sorted(int(m.group(1)) for key in shapes if (m := re.match(r"^map_(\d+)\.weight$", key)))
        d, channels = shapes["feature_extract.weight"][:2]
        kwargs = {"channels": channels, "d": d, "s": shapes["shrink.weight"][0], "m": len(maps),
                  "act_between_maps": False, "clip": True}

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


LAYOUTS: tuple[Callable[[Shapes], Detected | None], ...] = (_dncnn, _espcn, _fsrcnn)


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
