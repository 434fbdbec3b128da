"""Keras definitions of architectures whose weights verifier rebuilds from HDF5 files (written here).

The DnCNN is the Keras port of :class:`exporters.architectures.torch_nets.DnCNN`: same layers,
same BatchNorm epsilon (1e-5, not Keras' default 1e-3), NHWC, output = input - predicted noise.
Its layers carry fixed names so that the HDF5 reader recognises them; a same-shaped stack of
convs under other names could use other activations or no residual, so it is not guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import keras

from exporters.keras_exporter import KerasLayerWeights

#: torch's BatchNorm2d default, which the weights were trained (or ported) with.
BN_EPSILON = 1e-5
_CONV = re.compile(r"dncnn_conv_(\d+)")


def build_dncnn(channels: int = 1, depth: int = 17, width: int = 64, batch_norm: bool = True,
                bias: bool = True) -> keras.Model:
    """DnCNN in Keras; `bias` as in the torch definition (BN replaces the middle convs' bias)."""
    image = keras.Input((None, None, channels), name="image")
    y = image
    for index in range(depth):
        outer = index in (0, depth - 1)
        y = keras.layers.Conv2D(channels if index == depth - 1 else width, 3, padding="same",
                                use_bias=bias and (outer or not batch_norm), name=f"dncnn_conv_{index}")(y)
        if batch_norm and not outer:
            y = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"dncnn_bn_{index}")(y)
        if index < depth - 1:
            y = keras.layers.ReLU(name=f"dncnn_relu_{index}")(y)
    return keras.Model(image, keras.layers.Subtract(name="dncnn_residual")([image, y]), name="dncnn")


def dncnn_layout(layers: Sequence[KerasLayerWeights]) -> dict | None:
    """:func:`build_dncnn`'s keyword arguments when an HDF5 file's layers (in file order) are exactly
    its layers, names and shapes; None otherwise."""
    convs = [(int(m.group(1)), layer.arrays) for layer in layers if (m := _CONV.fullmatch(layer.name))]
    depth = len(convs)
    if depth < 3 or [index for index, _ in convs] != list(range(depth)):
        return None
    first = convs[0][1][0].shape
    if len(first) != 4 or first[:2] != (3, 3):
        return None
    channels, width = first[2], first[3]
    batch_norm = any(layer.name.startswith("dncnn_bn_") for layer in layers)
    kwargs = {"channels": channels, "depth": depth, "width": width, "batch_norm": batch_norm,
              "bias": len(convs[0][1]) == 2}
    model = build_dncnn(**kwargs)  # tiny and quick: its own layer list is the layout to match
    expected = [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in model.layers if layer.weights]
    found = [(layer.name, [a.shape for a in layer.arrays]) for layer in layers]
    return kwargs if found == expected else None
