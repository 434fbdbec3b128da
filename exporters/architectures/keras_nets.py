"""Keras definitions of architectures whose weights verifier rebuilds from HDF5 files (written here).

The DnCNN is the Keras port of :class:`exporters.architectures.torch_nets.DnCNN`: same layers,
same BatchNorm epsilon (1e-5, not Keras' default 1e-3), NHWC, output = input - predicted noise.
Saved with `model.save` (the config travels in the HDF5 file), it is read back like any Keras
full-model file: the config rebuilt from allowed layers (exporters.keras_config).
"""

from __future__ import annotations

import keras

#: torch's BatchNorm2d default, which the weights were trained (or ported) with.
BN_EPSILON = 1e-5


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
