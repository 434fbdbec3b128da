"""Weights-only Keras HDF5 files of architectures we know, described as Keras configs.

A `save_weights` file holds layer names and arrays but no architecture.  When the names and
kernel shapes are exactly those of a published model whose code we have read, the model's config
is written here (plain layers only) and goes through the same safe rebuild as a model.json.
Options the weights cannot tell (an FSRCNN's upscaling factor) come from --arch-kwargs or,
failing that, from an 'x2'/'x3'/'x4' in the file name, as the authors name their files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from exporters.base import ExportError

#: Nhat-Thanh/FSRCNN-TF (d=56, s=12, m=4): layer names and kernel sizes in file order.  The four
#: 3x3 mapping convs have no activation between them and one PReLU after; the output is clipped to [0, 1].
_FSRCNN = [("conv2d", 5), ("p_re_lu", None), ("conv2d_1", 1), ("p_re_lu_1", None), ("conv2d_2", 3),
           ("conv2d_3", 3), ("conv2d_4", 3), ("conv2d_5", 3), ("p_re_lu_2", None), ("conv2d_6", 1),
           ("p_re_lu_3", None), ("conv2d_transpose", 9)]
_SCALE_IN_NAME = re.compile(r"(?:^|[^a-z0-9])x([2-8])(?:[^0-9]|$)", re.IGNORECASE)


def _layer(name: str, arrays: Sequence, scale: int, channels: int) -> dict:
    if name.startswith("p_re_lu"):
        return {"class_name": "PReLU", "config": {"name": name, "shared_axes": [1, 2]}}
    kernel = list(arrays[0].shape[:2])
    if name == "conv2d_transpose":  # kernel (h, w, out, in)
        return {"class_name": "Conv2DTranspose", "config": {
            "name": name, "filters": int(arrays[0].shape[2]), "kernel_size": kernel, "strides": [scale, scale],
            "padding": "same"}}
    config = {"name": name, "filters": int(arrays[0].shape[3]), "kernel_size": kernel, "padding": "same"}
    if name == "conv2d":
        config["batch_input_shape"] = [None, None, None, channels]
    return {"class_name": "Conv2D", "config": config}


def _scale(source: Path, arch_kwargs: Mapping | None) -> int:
    if arch_kwargs and "scale" in arch_kwargs:
        return int(arch_kwargs["scale"])
    found = _SCALE_IN_NAME.search(source.stem)
    if found is None:
        raise ExportError(f"{source}: FSRCNN weights do not record the upscaling factor; "
                          "pass it with --arch-kwargs '{\"scale\": 2}'")
    return int(found.group(1))


def known_config(source: Path, layers: Sequence, arch_kwargs: Mapping | None) -> tuple[dict, str] | None:
    """(Keras config, what it is) for the weights of a known architecture, or None.

    `layers` are the file's KerasLayerWeights (name, arrays) in file order.
    """
    shapes = [(layer.name, layer.arrays[0].shape[0] if layer.arrays[0].ndim == 4 else None) for layer in layers]
    if shapes != _FSRCNN:
        return None
    channels, scale = int(layers[0].arrays[0].shape[2]), _scale(source, arch_kwargs)
    entries = [_layer(layer.name, layer.arrays, scale, channels) for layer in layers]
    entries.append({"class_name": "ReLU", "config": {"name": "clip", "max_value": 1.0}})  # clip_by_value(0, 1)
    return {"class_name": "Sequential", "config": entries}, f"FSRCNN x{scale} (Nhat-Thanh/FSRCNN-TF layout)"
