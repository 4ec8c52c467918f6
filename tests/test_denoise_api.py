import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from model.denoise import denoise, denoise_array, self_ensemble
from model.tiling import apply_tiled, tile_starts
from model.unet import UNet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False).eval()


def noisy_photo(height=70, width=90, sigma=0.1, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    clean = np.stack([np.sin(6 * xx), np.cos(5 * yy), xx * yy], axis=-1) * 0.4 + 0.5
    return (clean + rng.normal(0, sigma, clean.shape)).astype(np.float32)


def test_tiles_cover_the_image_and_overlap():
    starts = tile_starts(1000, 256, 32)
    assert starts[0] == 0 and starts[-1] == 1000 - 256
    assert all(b - a <= 256 - 32 for a, b in itertools.pairwise(starts))
    assert tile_starts(100, 256, 32) == [0]


def test_tiled_output_matches_the_whole_image_within_001_db(model):
    image = noisy_photo(150, 170)
    whole = denoise_array(image, model, 0.1, tile=512, overlap=32)
    tiled = denoise_array(image, model, 0.1, tile=64, overlap=24)
    clean_proxy = whole.astype(np.float64)
    gap = 10 * np.log10(1 / np.mean((tiled - clean_proxy) ** 2 + 1e-20))
    assert gap > 60  # the tiled result differs from the whole-image one by < 1e-3 RMS
    reference = noisy_photo(150, 170, sigma=0)
    psnr = [10 * np.log10(1 / np.mean((out - reference) ** 2)) for out in (whole, tiled)]
    assert abs(psnr[0] - psnr[1]) < 0.01


def test_tiling_is_exact_for_a_pointwise_network():
    image = np.random.default_rng(1).random((100, 130, 3)).astype(np.float32)
    out = apply_tiled(lambda x: x * 0.5, image, tile=32, overlap=8)
    np.testing.assert_allclose(out, image * 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="overlap"):
        apply_tiled(lambda x: x, image, tile=16, overlap=8)


def test_self_ensemble_undoes_each_flip_and_rotation():
    patch = torch.rand(2, 3, 20, 20)
    ramp = torch.linspace(0, 1, 20)
    np.testing.assert_allclose(self_ensemble(lambda x: x * 2 + 1)(patch), patch * 2 + 1, atol=1e-6)
    # a network that adds a left-to-right ramp: each orientation's output is turned back, so the
    # image itself comes back in place and the ramp averages out to its mean over all directions
    averaged = self_ensemble(lambda x: x + ramp)(patch)
    np.testing.assert_allclose(averaged, patch + ramp.mean(), atol=1e-6)


def test_ensemble_denoising_keeps_shape_and_differs_from_a_single_pass(model):
    photo = noisy_photo()
    single, averaged = (denoise(photo, model, 0.1, ensemble=e) for e in (False, True))
    assert averaged.shape == single.shape and averaged.dtype == single.dtype
    assert np.abs(averaged - single).max() > 1e-4


def test_every_input_kind_comes_back_as_the_same_kind(model):
    photo = noisy_photo()
    u8 = (photo.clip(0, 1) * 255).astype(np.uint8)
    assert denoise(photo, model, 0.1).dtype == np.float32
    assert denoise(u8, model, 0.1).dtype == np.uint8
    u16 = (photo.clip(0, 1) * 65535).astype(np.uint16)
    assert denoise(u16, model, 0.1).dtype == np.uint16
    assert denoise(u8[..., 0], model, 0.1).shape == u8.shape[:2]
    assert denoise(Image.fromarray(u8), model, 0.1).mode == "RGB"
    assert denoise(Image.fromarray(u8).convert("L"), model, 0.1).mode == "L"
    assert denoise(Image.fromarray(u8).convert("P"), model, 0.1).mode == "RGB"
    tensor = torch.from_numpy(photo).permute(2, 0, 1)
    assert denoise(tensor, model, 0.1).shape == tensor.shape
    assert denoise(torch.stack([tensor, tensor]), model, 0.1).shape == (2, *tensor.shape)
    gray = torch.from_numpy(photo[..., 0])  # a gray image as (H, W), as numpy takes it
    np.testing.assert_array_equal(denoise(gray, model, 0.1).numpy(), denoise(photo[..., 0], model, 0.1))


def test_a_path_is_refused_with_the_way_to_denoise_files(model):
    with pytest.raises(TypeError, match=r"got a path \(cat.jpg\), not pixels: pass PIL.Image.open\(path\)"):
        denoise("cat.jpg", model, 0.1)


def test_integer_tensors_are_read_on_their_full_scale(model):
    photo = noisy_photo().clip(0, 1)
    u8 = (photo * 255).round().astype(np.uint8)
    from_array = denoise(u8, model, 0.1)
    as_tensor = torch.from_numpy(u8).permute(2, 0, 1)  # what torchvision.io.read_image gives
    out = denoise(as_tensor, model, 0.1)
    assert out.dtype == torch.uint8
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), from_array)
    u16 = torch.from_numpy((photo * 65535).astype(np.int32)).permute(2, 0, 1).to(torch.uint16)
    out16 = denoise(u16[None], model, 0.1)
    assert out16.dtype == torch.uint16 and out16.shape == (1, *u16.shape)
    assert np.abs(out16[0].numpy().astype(np.float64) / 257 - out.numpy()).mean() < 1


def test_channels_first_arrays_get_a_hint(model):
    with pytest.raises(ValueError, match=r"channels first\? pass array.transpose\(1, 2, 0\)"):
        denoise(noisy_photo().transpose(2, 0, 1), model, 0.1)


def test_alpha_is_kept_untouched(model):
    rgb = (noisy_photo().clip(0, 1) * 255).astype(np.uint8)
    alpha = np.random.default_rng(2).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    out = denoise(np.dstack([rgb, alpha]), model, 0.1)
    assert out.shape == (*rgb.shape[:2], 4)
    np.testing.assert_array_equal(out[..., 3], alpha)
    pil = denoise(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), model, 0.1)
    np.testing.assert_array_equal(np.asarray(pil)[..., 3], alpha)


def test_sigma_is_estimated_when_not_given(model, monkeypatch):
    seen = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x, sigma=None: seen.append(sigma) or forward(x, sigma))
    denoise(noisy_photo(sigma=0.2), model)
    assert seen and seen[0] == pytest.approx(0.2, rel=0.1)


@pytest.mark.parametrize("sigma", [-0.1, 0.6])
def test_sigma_outside_the_range_is_refused(model, sigma):
    with pytest.raises(ValueError, match=r"within \[0, 0.5\]"):
        denoise(noisy_photo(), model, sigma)


@pytest.mark.parametrize("shape", [(0, 0, 3), (1, 1, 3), (5, 40, 3)])
def test_tiny_images_are_refused(model, shape):
    with pytest.raises(ValueError, match="at least 8x8"):
        denoise(np.zeros(shape, np.float32), model, 0.1)


def test_bf16_on_a_cpu_without_it_warns_and_stays_close_to_fp32(model, monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    noisy = noisy_photo(24, 24)
    with pytest.warns(UserWarning, match="bf16 is emulated on this cpu"):
        fast = denoise_array(noisy, model, 0.1, precision="bf16")
    assert np.abs(fast - denoise_array(noisy, model, 0.1)).max() < 0.05
