import numpy as np
import pytest
import skimage.data
from sklearn.datasets import load_sample_image

from model.noise_level import estimate_sigma

STANDARD = {
    "chelsea": skimage.data.chelsea(),
    "coffee": skimage.data.coffee(),
    "astronaut": skimage.data.astronaut(),
    "china": load_sample_image("china.jpg"),
    "flower": load_sample_image("flower.jpg"),
}


@pytest.mark.parametrize("sigma_255", [10, 15, 25, 50, 127.5])
def test_within_10_percent_on_the_standard_photos(sigma_255):
    sigma = sigma_255 / 255
    rng = np.random.default_rng(int(sigma_255 * 10))
    for name, image in STANDARD.items():
        clean = image / 255
        estimate = estimate_sigma(clean + rng.normal(0, sigma, clean.shape))
        assert estimate == pytest.approx(sigma, rel=0.10), name


def test_clean_photo_reads_as_almost_noiseless_and_gray_works():
    assert estimate_sigma(skimage.data.chelsea() / 255) < 5 / 255
    gray = skimage.data.camera() / 255
    noisy = gray + np.random.default_rng(0).normal(0, 0.1, gray.shape)
    assert estimate_sigma(noisy) == pytest.approx(0.1, rel=0.1)


def test_too_small_an_image_gives_zero():
    assert estimate_sigma(np.zeros((5, 5, 3))) == 0.0
