"""What a fingerprint file may contain: every metadata field's type and range, the members it may list,
how large each may be, and the shapes its arrays must have.

A fingerprint comes from someone else (an owner, a registry) and may be crafted: its digests only
show it was not changed after it was written, not that what was written is sane.  Everything is
checked against the settings it states before it is used, member sizes before anything is
decompressed, so a bad file is one :class:`~verifier.errors.InputError`, never an internal error
or gigabytes of memory.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from verifier.errors import InputError
from verifier.method.behaviour import METHODS
from verifier.method.degradation import KINDS
from verifier.method.weights import MAX_LAYERS, MAX_LINEAR_GROUP, MAX_ROWS, MIN_LINEAR_GROUP, is_linear, kernel_elements

#: Limits on what a fingerprint may state (far above anything verifier writes).
MAX_SEEDS = 64
MAX_THREADS = 256
MAX_SIZE = 1024  # critical-image side, pixels
MAX_CHANNELS = 4
MAX_SCALE = 8
MAX_REFERENCES = 256
MAX_EVALUATIONS = 1_000_000
MAX_KERNEL = 15
#: The JSON member, read before anything else.
MAX_META_BYTES = 1 << 20

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOP = {"schema", "tool", "settings", "owner", "calibration", "cost", "members", "content_sha256", "weights"}
_MEMBER = re.compile(r"arrays/(critical|residuals|references)\.npy|weights/layer_(\d+)\.npy"
                     r"|previews/critical_(\d+)\.png")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


def _int(value: Any, low: int, high: int, name: str) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
             f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _float(value: Any, low: float, high: float, name: str, open_low: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and value <= high
    _require(ok, f"{name} must be a number in {'(' if open_low else '['}{low}, {high}], got {value!r}")
    return float(value)


def _keys(value: Any, expected: set[str], name: str, optional: frozenset[str] = frozenset()) -> dict:
    _require(isinstance(value, dict), f"{name} must be an object")
    missing, unknown = expected - set(value), set(value) - expected - optional
    _require(not missing, f"{name} lacks {', '.join(sorted(missing))}")
    _require(not unknown, f"{name} has unknown field(s) {', '.join(sorted(unknown))}")
    return value


def check_meta(meta: Any) -> None:
    """Every field of fingerprint.json (schema 1, 2 or 3) against its type and range."""
    _keys(meta, _TOP - {"weights"}, "fingerprint.json", optional=frozenset({"weights"}))
    settings = _keys(meta["settings"], {"method", "recipe", "degradation", "seeds", "threads"}, "settings")
    _require(settings["method"] in METHODS, f"unknown method {settings['method']!r}")
    recipe = _keys(settings["recipe"], {"name", "optimizer", "evaluations", "size", "tv_weight", "learning_rate",
                                        "init"}, "recipe")
    _require(isinstance(recipe["name"], str) and len(recipe["name"]) <= 64, "recipe name must be a short string")
    _require(recipe["optimizer"] in ("adam", "lbfgsb"), f"unknown optimizer {recipe['optimizer']!r}")
    _require(recipe["init"] in ("uniform", "normal"), f"unknown init {recipe['init']!r}")
    _int(recipe["evaluations"], 1, MAX_EVALUATIONS, "recipe evaluations")
    _int(recipe["size"], 8, MAX_SIZE, "recipe size")
    _float(recipe["tv_weight"], 0.0, 1e3, "recipe tv_weight")
    _float(recipe["learning_rate"], 0.0, 1e3, "recipe learning_rate", open_low=True)
    degradation = _keys(settings["degradation"], {"kind", "scale", "sigma", "seed"}, "degradation")
    _require(degradation["kind"] in KINDS, f"unknown degradation {degradation['kind']!r}")
    _int(degradation["scale"], 1, MAX_SCALE, "degradation scale")
    _float(degradation["sigma"], 0.0, 100.0, "degradation sigma")
    _int(degradation["seed"], 0, 2**32 - 1, "degradation seed")
    seeds = settings["seeds"]
    _require(isinstance(seeds, list) and 1 <= len(seeds) <= MAX_SEEDS, f"seeds must be a list of 1 to {MAX_SEEDS}")
    for seed in seeds:
        _int(seed, 0, 2**32 - 1, "seed")
    _require(len(set(seeds)) == len(seeds), "seeds repeat")
    _int(settings["threads"], 1, MAX_THREADS, "threads")
    owner = _keys(meta["owner"], {"sha256", "channels", "out_channels", "scale"}, "owner")
    _require(isinstance(owner["sha256"], str) and _HEX64.fullmatch(owner["sha256"]) is not None,
             "owner sha256 must be 64 hex digits")
    _int(owner["channels"], 1, MAX_CHANNELS, "owner channels")
    _int(owner["out_channels"], 1, MAX_CHANNELS, "owner out_channels")
    _int(owner["scale"], 1, MAX_SCALE, "owner scale")
    calibration = _keys(meta["calibration"], {"null_scores", "references", "fpr", "threshold"}, "calibration")
    scores, references = calibration["null_scores"], calibration["references"]
    _require(isinstance(scores, list) and 3 <= len(scores) <= MAX_REFERENCES,
             f"null_scores must list 3 to {MAX_REFERENCES} scores")
    for value in scores:
        _float(value, -1e6, 1e6, "null score")
    _require(isinstance(references, list) and len(references) == len(scores)
             and all(isinstance(ref, str) and len(ref) <= 128 for ref in references),
             "references must name each null score's model")
    _float(calibration["fpr"], 0.0, 0.5, "fpr", open_low=True)
    cost = _keys(meta["cost"], {"evaluations", "seconds"}, "cost")
    _int(cost["evaluations"], 0, MAX_EVALUATIONS * MAX_SEEDS, "cost evaluations")
    _float(cost["seconds"], 0.0, 1e9, "cost seconds")
    kernels = _keys(meta.get("weights", {"kernels": []}), {"kernels"}, "weights")["kernels"]
    _require(isinstance(kernels, list) and len(kernels) <= MAX_LAYERS, "weights kernels must be a list")
    for kernel in kernels:
        _require(isinstance(kernel, list) and len(kernel) == 2, "a kernel size must be [height, width]")
        if is_linear(kernel):  # a linear layer cut into groups of kernel[1] inputs
            _int(kernel[1], MIN_LINEAR_GROUP, MAX_LINEAR_GROUP, "linear group")
        else:
            for side in kernel:
                _int(side, 1, MAX_KERNEL, "kernel side")
    members = meta["members"]
    _require(isinstance(members, dict), "members must be an object")
    for name, digest in members.items():
        _require(_MEMBER.fullmatch(name) is not None, f"unexpected member {name!r}")
        _require(isinstance(digest, str) and _HEX64.fullmatch(digest) is not None, f"bad digest for {name!r}")


def _image_shape(meta: dict) -> tuple[int, int, int, int, int, int]:
    """(seeds K, channels C, out channels, size S, probes P, references n) the settings imply."""
    settings, owner = meta["settings"], meta["owner"]
    response = settings["method"] == "response"
    count = len(settings["seeds"])
    return (count, owner["channels"], owner["out_channels"], settings["recipe"]["size"],
            2 * count if response else 0, len(meta["calibration"]["null_scores"]) if response else 0)


def member_limit(meta: dict, name: str) -> int:
    """The most bytes member `name` can hold given the settings (checked before decompressing it)."""
    count, channels, out_channels, size, probes, references = _image_shape(meta)
    header = 1024
    match = _MEMBER.fullmatch(name)
    assert match is not None  # check_meta admitted only these names
    if match.group(1) == "critical":
        return header + 4 * count * channels * size * size
    if match.group(1) == "residuals":
        return header + 4 * probes * out_channels * size * size
    if match.group(1) == "references":
        return header + 4 * references * probes * out_channels * size * size
    if match.group(2) is not None:
        kernels = meta.get("weights", {"kernels": []})["kernels"]
        index = int(match.group(2))
        _require(index < len(kernels), f"member {name!r} has no kernel size")
        elements = kernel_elements(tuple(kernels[index]))
        return header + 4 * MAX_ROWS * elements * (elements + 1) // 2
    return header + 65536 + 2 * channels * size * size  # a PNG preview, at worst about its raw size


def check_arrays(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Shapes, dtypes and values of the arrays against the settings."""
    count, channels, out_channels, size, probes, references = _image_shape(meta)
    expected = {"critical": (count, channels, size, size),
                "residuals": (probes, out_channels, size, size) if probes else (0,),
                "references": (references, probes, out_channels, size, size) if probes else (0,)}
    for name, shape in expected.items():
        _require(name in arrays, f"array {name!r} missing")
        array = arrays[name]
        _require(array.dtype == np.float32 and array.shape == shape,
                 f"array {name!r} is {array.dtype}{list(array.shape)}, expected float32{list(shape)}")
        _require(bool(np.isfinite(array).all()), f"array {name!r} holds NaN or Inf")
    _require(bool(((arrays["critical"] >= 0) & (arrays["critical"] <= 1)).all()), "critical images leave [0, 1]")
