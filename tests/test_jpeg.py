"""JPEG'd training crops (`--jpeg-fraction`): which crops are compressed, how much, reproducibly,
and that the option reaches training and its resumable state."""

import numpy as np
import pytest
import torch

from model.jpeg import compress, jpeg_round_trip
from model.metrics import psnr
from model.train import train
from tests.test_train import tiny_config


def smooth_crops(count: int = 8, side: int = 64) -> torch.Tensor:
    noise = torch.rand(count, 3, side, side, generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.avg_pool2d(noise, 9, 1, 4, count_include_pad=False)


def mean_psnr(crops: torch.Tensor, reference: torch.Tensor) -> float:
    return float(np.mean([psnr(a[None], b[None]).item() for a, b in zip(crops, reference, strict=True)]))


def test_none_or_every_crop_is_compressed_and_the_draws_do_not_depend_on_which():
    crops = smooth_crops()
    none, every = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(jpeg_round_trip(crops, 0.0, 75, none), crops)
    compressed = jpeg_round_trip(crops, 1.0, 75, every)
    assert all(not torch.equal(a, b) for a, b in zip(compressed, crops, strict=True))
    assert compressed.min() >= 0 and compressed.max() <= 1 and compressed.shape == crops.shape
    assert torch.equal(none.get_state(), every.get_state())  # crops and noise after it stay as without


def test_a_share_of_the_crops_is_compressed_the_same_way_for_the_same_seed():
    crops = smooth_crops(64, 16)
    first = jpeg_round_trip(crops, 0.5, 75, torch.Generator().manual_seed(2))
    again = jpeg_round_trip(crops, 0.5, 75, torch.Generator().manual_seed(2))
    assert torch.equal(first, again)
    changed = sum(not torch.equal(a, b) for a, b in zip(first, crops, strict=True))
    assert 20 <= changed <= 44


def test_lower_quality_loses_more():
    crops = smooth_crops()
    best = mean_psnr(jpeg_round_trip(crops, 1.0, 95, torch.Generator().manual_seed(3)), crops)
    worst = mean_psnr(jpeg_round_trip(crops, 1.0, 10, torch.Generator().manual_seed(3)), crops)
    assert 25 < worst < best
    pixels = (smooth_crops(1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert compress(pixels, 90).shape == pixels.shape and compress(pixels, 90).dtype == np.uint8


def test_jpeg_crops_change_training_and_their_draws_are_saved_to_resume(tmp_path, image_folder):
    plain = train(tiny_config(tmp_path / "plain", image_folder, epochs=1))
    jpeg = train(tiny_config(tmp_path / "jpeg", image_folder, epochs=1, jpeg_fraction=1.0))
    a, b = (torch.load(run["last"], weights_only=True) for run in (plain, jpeg))
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert "jpeg_generator" in b and not torch.equal(a["jpeg_generator"], b["jpeg_generator"])


@pytest.mark.parametrize(("fraction", "quality"), [(1.5, 75), (-0.1, 75), (0.5, 0), (0.5, 100)])
def test_a_fraction_or_quality_out_of_range_is_refused(tmp_path, image_folder, fraction, quality):
    config = tiny_config(tmp_path, image_folder, jpeg_fraction=fraction, jpeg_quality=quality)
    with pytest.raises(ValueError, match="jpeg_fraction must be in"):
        train(config)
