"""Numerical checks shared by the gradient tests."""

from __future__ import annotations

import numpy as np

from verifier import Model


def rel_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|: one number for 'same array up to scale'."""
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


def directional_fd_error(model: Model, x: np.ndarray, eps: float = 1e-3, seed: int = 0) -> float:
    """Relative error of <vjp(x, dy), v> against a central difference of <dy, f(x)> along v.

    Good for small smooth models; on large ReLU nets a random direction crosses kinks,
    so check single pixels there instead.
    """
    rng = np.random.default_rng(seed)
    dy = rng.normal(size=model.run(x).shape).astype(np.float32)
    v = rng.normal(size=x.shape)

    def along(t: float) -> float:
        return float((dy * model.run((x + t * v).astype(np.float32))).sum(dtype=np.float64))

    numeric = (along(eps) - along(-eps)) / (2 * eps)
    analytic = float((model.vjp(x, dy).astype(np.float64) * v).sum())
    return abs(analytic - numeric) / max(abs(numeric), 1e-6)


def coordinate_fd_error(model: Model, x: np.ndarray, eps: float = 1e-3, seed: int = 0) -> float:
    """max |vjp - numeric gradient| / max |vjp|, the numeric gradient by central differences per pixel.

    Costs two forward runs per input element: for tiny models.  Unlike a random
    direction, it cannot pass by cancellation and it localises errors to pixels.
    """
    rng = np.random.default_rng(seed)
    dy = rng.normal(size=model.run(x).shape).astype(np.float32)
    grad = model.vjp(x, dy)
    numeric = np.zeros(x.size)
    flat = x.reshape(-1)
    for index in range(x.size):
        values = []
        for step in (eps, -eps):
            moved = flat.copy()
            moved[index] += step
            values.append(float((dy * model.run(moved.reshape(x.shape))).sum(dtype=np.float64)))
        numeric[index] = (values[0] - values[1]) / (2 * eps)
    return float(np.abs(grad.reshape(-1) - numeric).max() / max(np.abs(grad).max(), 1e-12))
