"""The zoo's training data: held-out images must really be held out."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("skimage")

from models.training import IMAGE_SETS, images

pytestmark = [pytest.mark.frameworks]


def _digests(set_name: str) -> set[str]:
    return {hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest() for image in images(set_name, 3)}


def test_image_sets_share_no_image() -> None:
    """Compared by pixels, not names: skimage's `cat` is `chelsea` under another name."""
    held_out, a, b = _digests("held_out"), _digests("a"), _digests("b")
    assert len(held_out) == len(IMAGE_SETS["held_out"])
    assert not held_out & a and not held_out & b and not a & b


@pytest.mark.parametrize("channels", [1, 3])
def test_images_are_float_in_unit_range(channels: int) -> None:
    for image in images("held_out", channels):
        assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == channels
        assert image.min() >= 0.0 and image.max() <= 1.0
        assert image.std() > 0.03  # none nearly flat (skimage.data.cell: 0.02)
