import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from model.metrics import psnr, ssim


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)


def image_pairs():
    rng = np.random.default_rng(0)
    cat = data.chelsea().astype(np.float32) / 255
    noisy_cat = np.clip(cat + rng.normal(0, 0.1, cat.shape), 0, 1).astype(np.float32)
    blurred = (cat + np.roll(cat, 1, axis=0) + np.roll(cat, 1, axis=1)) / 3
    random_a = rng.random((37, 53, 3)).astype(np.float32)
    random_b = rng.random((37, 53, 3)).astype(np.float32)
    return {"noisy cat": (cat, noisy_cat), "blurred cat": (cat, blurred), "random": (random_a, random_b)}


@pytest.mark.parametrize("name", image_pairs().keys())
def test_psnr_and_ssim_agree_with_scikit_image(name):
    clean, other = image_pairs()[name]
    expected_psnr = peak_signal_noise_ratio(clean, other, data_range=1)
    expected_ssim = structural_similarity(
        clean, other, data_range=1, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert psnr(as_tensor(other), as_tensor(clean)).item() == pytest.approx(expected_psnr, abs=1e-3)
    assert ssim(as_tensor(other), as_tensor(clean)).item() == pytest.approx(expected_ssim, abs=1e-3)


def test_metrics_are_per_image_in_a_batch():
    clean = torch.rand(3, 3, 32, 32)
    noisy = clean + torch.stack([torch.full_like(clean[0], level) for level in (0.01, 0.1, 0.3)])
    values = psnr(noisy, clean)
    assert values.shape == (3,)
    assert values[0] > values[1] > values[2]
    assert ssim(clean, clean).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_ssim_rejects_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 8))


def test_y_channel_matches_scikit_image_and_shaves_the_border():
    from skimage.color import rgb2ycbcr

    from model.metrics import psnr_y, rgb_to_y

    image = torch.rand(3, 20, 24, dtype=torch.float64)
    expected = rgb2ycbcr(image.permute(1, 2, 0).numpy())[..., 0] / 255
    assert np.allclose(rgb_to_y(image)[0].numpy(), expected, atol=1e-6)
    other = image.clone()
    other[:, 0, :] = 0  # damage only the top row
    assert psnr_y(other, image, shave=2).item() == float("inf")
    assert psnr_y(other, image).item() < 100
