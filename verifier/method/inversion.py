"""Model inversion: the critical images that make up a fingerprint.

A critical image x of a model f minimises ``sum((f(D(x)) - x)^2) - lambda * TV_L1(x)``
(Quan et al., ICCV 2023): an image with as much fine structure as possible that
f still restores from its degraded version.  It depends on the exact weights,
which is what makes it a fingerprint.

The loss, D and f form one ONNX graph (see :mod:`verifier.graph.objective`), so each
optimiser step is one onnxruntime call.  Two recipes:

- ``reference``: the authors' Adam (lr 0.1, 5000 steps), projected onto the value
  range after each step.  Unprojected, the loss is unbounded below for
  near-identity models (denoisers) and Adam diverges.
- ``fast``: scipy's L-BFGS-B with box bounds and a small evaluation budget.

Every critical image starts from its own seeded noise image, and everything is
computed in a fixed order, so the same model and recipe give the same bits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from onnx import helper, numpy_helper

from verifier.errors import InputError
from verifier.graph.model import Model
from verifier.graph.objective import LOSS, MODEL_OUT, VARIABLE, Objective
from verifier.method.degradation import Degradation, degradation_graph

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Recipe:
    """How critical images are computed; recorded in fingerprints so the suspect side repeats it."""

    name: str
    optimizer: str  # "adam" or "lbfgsb"
    evaluations: int  # gradient evaluations per critical image
    size: int = 128  # height and width of the critical image
    tv_weight: float = 1e-3
    learning_rate: float = 0.1  # Adam only
    init: str = "uniform"  # "uniform" in the value range, or "normal" (standard normal, then projected)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        """Inverse of :meth:`to_dict`."""
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


RECIPES = {
    "reference": Recipe("reference", "adam", evaluations=5000, init="normal"),
    "fast": Recipe("fast", "lbfgsb", evaluations=30),
}


@dataclass(frozen=True)
class CriticalImages:
    """K critical images (K, C, H, W) in [0, 1] with the seeds and costs that produced them."""

    images: np.ndarray
    seeds: tuple[int, ...]
    losses: tuple[float, ...]
    evaluations: int
    seconds: float


def inversion_objective(degradation: Degradation, shape: tuple[int, int, int, int], tv_weight: float) -> Objective:
    """loss = sum((f(D(x)) - x)^2) - tv_weight * TV_L1(x), TV_L1 = 2 (mean|dx| + mean|dy|)."""
    before, inits = degradation_graph(degradation, shape)
    big = np.iinfo(np.int64).max
    consts: dict[str, np.ndarray] = {
        "I/start": np.array([1], np.int64), "I/stop": np.array([big], np.int64),
        "I/head_stop": np.array([-1], np.int64), "I/zero": np.array([0], np.int64),
        "I/h": np.array([2], np.int64), "I/w": np.array([3], np.int64),
        "I/tv_coef": np.array(-2.0 * tv_weight, np.float32),
    }
    inits += [numpy_helper.from_array(value, name) for name, value in consts.items()]
    after = [
        helper.make_node("Sub", [MODEL_OUT, VARIABLE], ["I/residual"]),
        helper.make_node("Mul", ["I/residual", "I/residual"], ["I/squared"]),
        helper.make_node("ReduceSum", ["I/squared"], ["I/reconstruction"], keepdims=0),
    ]
    for axis in ("h", "w"):
        after += [
            helper.make_node("Slice", [VARIABLE, "I/start", "I/stop", f"I/{axis}"], [f"I/{axis}_tail"]),
            helper.make_node("Slice", [VARIABLE, "I/zero", "I/head_stop", f"I/{axis}"], [f"I/{axis}_head"]),
            helper.make_node("Sub", [f"I/{axis}_tail", f"I/{axis}_head"], [f"I/{axis}_diff"]),
            helper.make_node("Abs", [f"I/{axis}_diff"], [f"I/{axis}_abs"]),
            helper.make_node("ReduceMean", [f"I/{axis}_abs"], [f"I/{axis}_tv"], keepdims=0),
        ]
    after += [
        helper.make_node("Add", ["I/h_tv", "I/w_tv"], ["I/tv"]),
        helper.make_node("Mul", ["I/tv", "I/tv_coef"], ["I/tv_term"]),
        helper.make_node("Add", ["I/reconstruction", "I/tv_term"], [LOSS]),
    ]
    return Objective(name=f"inversion_{degradation.kind}_{tv_weight:g}", after=tuple(after), before=tuple(before),
                     initializers=tuple(inits))


def initial_image(seed: int, shape: tuple[int, int, int, int], init: str) -> np.ndarray:
    """The seeded starting point, inside [0, 1]."""
    rng = np.random.default_rng(seed)
    if init == "uniform":
        return rng.random(shape, dtype=np.float32)
    if init == "normal":
        return np.clip(rng.standard_normal(shape, dtype=np.float32), 0, 1)
    raise InputError(f"unknown initialisation '{init}'")


def _adam(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray, recipe: Recipe) -> np.ndarray:
    """Adam (beta 0.9/0.999, eps 1e-8) projected onto [0, 1] after every step."""
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    for step in range(1, recipe.evaluations + 1):
        _, grad = fun(x)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        update = (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        x = np.clip(x - np.float32(recipe.learning_rate) * update, 0, 1).astype(np.float32)
    return x


def _lbfgsb(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray, recipe: Recipe) -> np.ndarray:
    """L-BFGS-B in float64 with the box [0, 1], stopped after the evaluation budget."""
    shape = x.shape

    def flat(z: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = fun(z.reshape(shape).astype(np.float32))
        return loss, grad.ravel().astype(np.float64)

    from scipy.optimize import minimize  # imported here: scipy takes most of the CLI's start-up time

    result = minimize(flat, x.ravel().astype(np.float64), jac=True, method="L-BFGS-B",
                      bounds=[(0.0, 1.0)] * x.size,
                      options={"maxfun": recipe.evaluations, "maxiter": recipe.evaluations, "maxcor": 10,
                               "ftol": 0.0, "gtol": 0.0})
    return np.clip(result.x.reshape(shape), 0, 1).astype(np.float32)


_OPTIMIZERS = {"adam": _adam, "lbfgsb": _lbfgsb}


def critical_images(model: Model, recipe: Recipe, degradation: Degradation, seeds: tuple[int, ...],
                    progress: Progress | None = None) -> CriticalImages:
    """One critical image per seed, computed with `recipe` on `model`."""
    if recipe.optimizer not in _OPTIMIZERS:
        raise InputError(f"unknown optimizer '{recipe.optimizer}'")
    shape = (1, model.io.out_channels, recipe.size, recipe.size)
    if model.io.out_channels != model.io.channels:
        raise InputError(f"model maps {model.io.channels} to {model.io.out_channels} channels: "
                         "critical images need a model whose output has its input's channels")
    objective = inversion_objective(degradation, shape, recipe.tv_weight)
    count = 0

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal count
        count += 1
        return model.value_and_grad(objective, x)

    started = time.perf_counter()
    images, losses = [], []
    for index, seed in enumerate(seeds):
        if progress:
            progress(f"critical image {index + 1}/{len(seeds)} (seed {seed}, {recipe.name} recipe)")
        x = _OPTIMIZERS[recipe.optimizer](fun, initial_image(seed, shape, recipe.init), recipe)
        images.append(x[0])
        losses.append(model.value_and_grad(objective, x)[0])
    return CriticalImages(images=np.stack(images), seeds=tuple(seeds), losses=tuple(losses), evaluations=count,
                          seconds=time.perf_counter() - started)
