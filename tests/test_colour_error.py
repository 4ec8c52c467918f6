"""benchmarks/colour_error.py: the error split into brightness and colour, noise left and detail lost."""

import numpy as np
import pytest

from benchmarks.colour_error import OPPONENT, compare, markdown, split_error


def photo(seed: int = 0, side: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.2, 0.8, (side, side, 3))


def test_the_opponent_basis_is_orthonormal():
    np.testing.assert_allclose(OPPONENT @ OPPONENT.T, np.eye(3), atol=1e-12)


def test_shrunk_noise_is_all_noise_left_and_no_detail_lost():
    clean = photo()
    noise = np.random.default_rng(1).normal(0, 0.02, clean.shape)
    split = split_error(clean + 0.3 * noise, clean, noise)
    np.testing.assert_allclose(split["left"], 0.3, atol=1e-9)
    np.testing.assert_allclose(split["lost"], 0, atol=1e-12)
    np.testing.assert_allclose(split["error"].mean(), ((0.3 * noise) ** 2).mean(), rtol=1e-9)


def test_a_grey_change_is_brightness_and_a_colour_change_is_colour():
    clean = photo()
    noise = np.random.default_rng(2).normal(0, 0.02, clean.shape)
    grey = split_error(clean + 0.01, clean, noise)
    assert grey["lost"][0] > 0 and np.allclose(grey["lost"][1:], 0, atol=1e-8)
    colour = split_error(clean + np.array([0.01, 0, -0.01]), clean, noise)
    assert colour["lost"][1] > 0 and np.allclose(colour["lost"][[0, 2]], 0, atol=1e-8)


def test_compare_puts_our_excess_error_where_it_is():
    photos = {"a": photo(3), "b": photo(4)}

    def exact(noisy, sigma):  # the reference: every photo back as it was
        return next(clean for clean in photos.values() if np.abs(noisy - clean).max() < 6 * sigma)

    def colour_shift(noisy, sigma):
        return exact(noisy, sigma) + np.array([0.01, 0, -0.01])

    rows = compare(photos, 5 / 255, colour_shift, reference=lambda noisy, sigma: exact(noisy, sigma) + 0.001)
    assert [row["photo"] for row in rows] == ["a", "b"]
    for row in rows:
        assert row["margin"] < 0 and row["colour share"] == pytest.approx(1.0, abs=0.02)
        assert row["ours"]["colour"] > row["CBM3D"]["colour"] and abs(row["ours"]["left"]) < 0.1
    table = markdown({("standard", "5/255"): rows})
    assert table.count("\n") == 3 and "| standard | 5/255 | a |" in table and "%" in table
