"""Colour and LGP histograms and the chi-square distance."""

from __future__ import annotations

import numpy as np

from verifier.method.features import chi_square, colour_histogram, lgp_codes, lgp_histogram


def test_lgp_code_of_one_pixel():
    # Neighbours clockwise from the top-left; |differences| to the centre (0.5): 0.5 0 0 0 0.4 0 0 0.3.
    patch = np.array([[1.0, 0.5, 0.5],
                      [0.2, 0.5, 0.5],
                      [0.5, 0.5, 0.9]])
    # Mean difference 0.15: neighbours 0 (top-left), 4 (bottom-right) and 7 (left) reach it.
    assert lgp_codes(patch).tolist() == [[1 + 16 + 128]]


def test_flat_image_sets_every_bit():
    assert set(lgp_codes(np.zeros((5, 5))).ravel().tolist()) == {255}


def test_histograms_are_normalised_per_channel():
    image = np.random.default_rng(0).random((3, 20, 20))
    for hist, bins in ((colour_histogram(image), 64), (lgp_histogram(image), 256)):
        assert hist.shape == (3, bins)
        np.testing.assert_allclose(hist.sum(axis=1), 1.0)


def test_chi_square():
    p = np.array([[0.5, 0.5, 0.0]])
    q = np.array([[0.0, 0.5, 0.5]])
    assert chi_square(p, p) == 0.0
    assert chi_square(p, q) == chi_square(q, p) == 0.5
