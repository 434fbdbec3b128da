"""Inversion: the loss graph equals its definition, its gradient is right, results are bounded and bit-reproducible."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from builders import conv_model

from verifier import model_from_proto
from verifier.method.degradation import Degradation, degrade
from verifier.method.inversion import RECIPES, Recipe, critical_images, initial_image, inversion_objective

CASES = {"denoise": (1, Degradation("noise", sigma=0.1, seed=2)), "sr_x2": (2, Degradation("downsample", scale=2)),
         "deblur": (1, Degradation("blur", sigma=1.0))}


def _tv(x: np.ndarray) -> float:
    return 2 * (np.abs(np.diff(x, axis=2)).mean() + np.abs(np.diff(x, axis=3)).mean())


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_and_gradient(case: str):
    scale, degradation = CASES[case]
    model = model_from_proto(conv_model(scale=scale))
    shape = (1, 3, 8, 8)
    objective = inversion_objective(degradation, shape, tv_weight=0.5)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    loss, grad = model.value_and_grad(objective, x)
    expected = ((model.run(degrade(degradation, x)) - x) ** 2).sum() - 0.5 * _tv(x)
    assert loss == pytest.approx(float(expected), rel=1e-5)
    # Central differences along a random direction (TV is smooth away from ties, which random x avoids).
    v = np.random.default_rng(1).normal(size=shape)
    eps = 1e-3
    numeric = (model.value_and_grad(objective, (x + eps * v).astype(np.float32))[0]
               - model.value_and_grad(objective, (x - eps * v).astype(np.float32))[0]) / (2 * eps)
    assert float((grad * v).sum()) == pytest.approx(numeric, rel=2e-2)


@pytest.mark.parametrize("optimizer", ["lbfgsb", "adam"])
def test_inversion_lowers_the_loss_within_bounds(optimizer: str):
    model = model_from_proto(conv_model(seed=3))
    degradation = Degradation("noise", sigma=0.1)
    recipe = Recipe("test", optimizer, evaluations=20, size=16, learning_rate=0.05)
    found = critical_images(model, recipe, degradation, (0, 1))
    assert found.images.shape == (2, 3, 16, 16) and found.evaluations >= 2 * 10
    assert found.images.min() >= 0 and found.images.max() <= 1
    objective = inversion_objective(degradation, (1, 3, 16, 16), recipe.tv_weight)
    for seed, loss in zip(found.seeds, found.losses, strict=True):
        start = model.value_and_grad(objective, initial_image(seed, (1, 3, 16, 16), recipe.init))[0]
        assert loss < start


def test_critical_images_are_bitwise_reproducible():
    recipe = dataclasses.replace(RECIPES["fast"], evaluations=15, size=16)
    runs = [critical_images(model_from_proto(conv_model(seed=4), threads=2), recipe,
                            Degradation("noise", sigma=0.1), (0, 5)).images for _ in range(2)]
    assert runs[0].tobytes() == runs[1].tobytes()
    other = critical_images(model_from_proto(conv_model(seed=5), threads=2), recipe, Degradation("noise", sigma=0.1),
                            (0, 5)).images
    assert other.tobytes() != runs[0].tobytes()


def test_reference_recipe_is_the_authors():
    reference = RECIPES["reference"]
    assert (reference.optimizer, reference.evaluations, reference.learning_rate, reference.size,
            reference.tv_weight) == ("adam", 5000, 0.1, 128, 1e-3)
    assert RECIPES["fast"].evaluations * 10 <= reference.evaluations
