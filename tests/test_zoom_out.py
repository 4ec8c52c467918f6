"""Crops from downscaled photos (`--zoom-out-fraction`): the photos shrink with an antialiased
filter, too-small ones are left out, and the option reaches training."""

import pytest
import torch

from model.photo_crops import zoomed_out
from model.train import train
from tests.test_train import tiny_config


def test_photos_shrink_by_the_factor_and_fine_stripes_average_out():
    stripes = torch.zeros(3, 80, 120, dtype=torch.uint8)
    stripes[:, :, ::4] = 200  # one bright column in four: sampling without a filter would miss them all
    (small,) = zoomed_out([stripes], 4.0, smallest=16)
    assert small.shape == (3, 20, 30) and small.dtype == torch.uint8
    inner = small[:, 2:-2, 2:-2].float()  # away from the borders' reflection
    assert (inner - 50).abs().max() <= 1


def test_photos_too_small_after_downscaling_are_left_out_and_none_left_is_an_error():
    big, small = torch.zeros(3, 64, 64, dtype=torch.uint8), torch.zeros(3, 30, 64, dtype=torch.uint8)
    assert [p.shape for p in zoomed_out([big, small], 2.0, smallest=16)] == [(3, 32, 32)]
    with pytest.raises(ValueError, match="no training photo keeps 16 pixels a side when downscaled by 4"):
        zoomed_out([small], 4.0, smallest=16)


@pytest.mark.parametrize("changes", [{"zoom_out_fraction": 0.5}, {"zoom_out_fraction": 1.0, "texture_candidates": 2}])
def test_zoomed_out_crops_change_training(tmp_path, image_folder, changes):
    plain = train(tiny_config(tmp_path / "plain", image_folder, epochs=1))
    zoomed = train(tiny_config(tmp_path / "zoomed", image_folder, epochs=1, **changes))
    a, b = (torch.load(run["last"], weights_only=True)["model"] for run in (plain, zoomed))
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("fraction, factor", [(-0.1, 2.0), (1.5, 2.0), (0.5, 1.0)])
def test_a_share_outside_zero_to_one_or_a_factor_not_above_one_is_refused(tmp_path, image_folder, fraction, factor):
    config = tiny_config(tmp_path, image_folder, zoom_out_fraction=fraction, zoom_out_factor=factor)
    with pytest.raises(ValueError, match="zoom_out_fraction must be in"):
        train(config)
