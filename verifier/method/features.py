"""Image features of critical images: the paper's colour and local-gradient-pattern histograms.

Both are histograms per channel, normalised to sum to one, compared with the
chi-square distance.  They are what Quan et al. compare; :mod:`verifier.method.behaviour`
keeps them as the ``paper`` baseline.
"""

from __future__ import annotations

import numpy as np

COLOUR_BINS = 64
LGP_BINS = 256
# The 8 neighbours, clockwise from the top-left; neighbour i sets bit i of the LGP code.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def colour_histogram(image: np.ndarray, bins: int = COLOUR_BINS) -> np.ndarray:
    """(C, bins) histograms of a CHW image in [0, 1], each summing to 1."""
    counts = np.stack([np.histogram(channel, bins=bins, range=(0.0, 1.0))[0] for channel in image])
    return (counts / counts.sum(axis=1, keepdims=True)).astype(np.float64)


def lgp_codes(channel: np.ndarray) -> np.ndarray:
    """LGP code of each interior pixel of an HW array.

    Bit i is set when neighbour i's absolute difference to the centre is at least
    the mean absolute difference over the 8 neighbours.
    """
    height, width = channel.shape
    centre = channel[1:-1, 1:-1]
    diffs = np.stack([np.abs(channel[1 + dy:height - 1 + dy, 1 + dx:width - 1 + dx] - centre)
                      for dy, dx in _NEIGHBOURS])
    bits = diffs >= diffs.mean(axis=0)
    return np.tensordot(1 << np.arange(8), bits.astype(np.int64), axes=1)


def lgp_histogram(image: np.ndarray) -> np.ndarray:
    """(C, 256) LGP histograms of a CHW image, each summing to 1."""
    counts = np.stack([np.bincount(lgp_codes(channel).ravel(), minlength=LGP_BINS) for channel in image])
    return (counts / counts.sum(axis=1, keepdims=True)).astype(np.float64)


def chi_square(p: np.ndarray, q: np.ndarray) -> float:
    """Symmetric chi-square distance 0.5 * sum((p - q)^2 / (p + q)), averaged over rows (channels)."""
    total = p + q
    terms = np.divide((p - q) ** 2, total, out=np.zeros_like(total), where=total > 0)
    return float(0.5 * terms.sum(axis=-1).mean())
