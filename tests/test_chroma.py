"""Colour gain on training crops (`--chroma-gain`): brightness kept, colour scaled within the drawn
range, reproducibly, and the option reaches training and its resumable state."""

import pytest
import torch

from model.chroma import boost_chroma
from model.train import train
from tests.test_train import tiny_config


def muted_crops(count: int = 16, side: int = 8) -> torch.Tensor:
    """Grey plus a little colour, so that no gain up to 3 leaves [0, 1]."""
    generator = torch.Generator().manual_seed(0)
    return 0.5 + 0.1 * (torch.rand(count, 3, side, side, generator=generator) - 0.5)


def test_colour_is_scaled_by_a_gain_within_range_and_brightness_kept():
    crops = muted_crops()
    boosted = boost_chroma(crops, 3.0, torch.Generator().manual_seed(1))
    grey, colour = crops.mean(1, keepdim=True), crops - crops.mean(1, keepdim=True)
    torch.testing.assert_close(boosted.mean(1, keepdim=True), grey)
    gains = (boosted - grey).flatten(1).norm(dim=1) / colour.flatten(1).norm(dim=1)
    assert gains.min() >= 1 - 1e-4 and gains.max() <= 3 + 1e-4 and gains.max() - gains.min() > 0.5
    torch.testing.assert_close(boosted - grey, gains.reshape(-1, 1, 1, 1) * colour)


def test_the_same_seed_gives_the_same_gains_and_a_gain_of_one_changes_nothing():
    crops = muted_crops()
    first = boost_chroma(crops, 2.0, torch.Generator().manual_seed(2))
    assert torch.equal(first, boost_chroma(crops, 2.0, torch.Generator().manual_seed(2)))
    torch.testing.assert_close(boost_chroma(crops, 1.0, torch.Generator()), crops)


def test_vivid_colour_is_clipped_to_the_pixel_range():
    crops = torch.tensor([1.0, 0.0, 0.5]).reshape(1, 3, 1, 1).expand(4, 3, 2, 2)
    boosted = boost_chroma(crops, 4.0, torch.Generator().manual_seed(3))
    assert boosted.min() >= 0 and boosted.max() <= 1


def test_chroma_gain_changes_training_and_its_draws_are_saved_to_resume(tmp_path, image_folder):
    plain = train(tiny_config(tmp_path / "plain", image_folder, epochs=1))
    vivid = train(tiny_config(tmp_path / "vivid", image_folder, epochs=1, chroma_gain=2.0))
    a, b = (torch.load(run["last"], weights_only=True) for run in (plain, vivid))
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert not torch.equal(a["chroma_generator"], b["chroma_generator"])


def test_a_gain_below_one_is_refused(tmp_path, image_folder):
    with pytest.raises(ValueError, match="chroma_gain must be >= 1"):
        train(tiny_config(tmp_path, image_folder, chroma_gain=0.5))
