"""Flax (linen) definitions of architectures whose msgpack checkpoints verifier exports (written here).

The DnCNN is the Flax port of :class:`exporters.architectures.torch_nets.DnCNN`: NHWC, zero
padding, BatchNorm with running statistics and epsilon 1e-5 (torch's), output = input -
predicted noise.  A checkpoint is its ``model.apply`` variables: ``params`` (``conv_i`` with
an HWIO ``kernel`` and optional ``bias``; ``bn_i`` with ``scale`` and ``bias``) and, with
BatchNorm, ``batch_stats`` (``bn_i`` with ``mean`` and ``var``), for middle layers i.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import numpy as np

BN_EPSILON = 1e-5


class DnCNN(nn.Module):
    """DnCNN in Flax; `bias` as in the torch definition (BN replaces the middle convs' bias)."""

    channels: int = 1
    depth: int = 17
    width: int = 64
    batch_norm: bool = True
    bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = x
        for index in range(self.depth):
            outer = index in (0, self.depth - 1)
            y = nn.Conv(self.channels if index == self.depth - 1 else self.width, (3, 3), padding=((1, 1), (1, 1)),
                        use_bias=self.bias and (outer or not self.batch_norm), name=f"conv_{index}")(y)
            if self.batch_norm and not outer:
                y = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name=f"bn_{index}")(y)
            if index < self.depth - 1:
                y = nn.relu(y)
        return x - y


def _shapes(tree: dict) -> dict:
    return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


def dncnn_layout(state: dict) -> dict | None:
    """:class:`DnCNN`'s fields when a checkpoint's variables have exactly its names and shapes; None otherwise."""
    params = state.get("params")
    if not isinstance(params, dict):
        return None
    first = params.get("conv_0", {}).get("kernel")
    if first is None or np.ndim(first) != 4 or np.shape(first)[:2] != (3, 3):
        return None
    channels, width = np.shape(first)[2:]
    fields: dict[str, Any] = {"channels": int(channels), "depth": sum(key.startswith("conv_") for key in params),
                              "width": int(width), "batch_norm": "batch_stats" in state,
                              "bias": "bias" in params["conv_0"]}
    if fields["depth"] < 3:
        return None
    expected = jax.eval_shape(DnCNN(**fields).init, jax.random.PRNGKey(0),
                              jax.ShapeDtypeStruct((1, 8, 8, fields["channels"]), np.float32))
    return fields if _shapes(state) == _shapes(dict(expected)) else None
