"""Textured training crops (`--texture-candidates`): the choice, its own draws, and resume state."""

import pytest
import torch

from model.photo_crops import CropSampler, most_textured, texture
from model.train import train
from tests.test_train import tiny_config


def test_texture_is_zero_on_flat_crops_and_grows_with_detail():
    flat = torch.full((1, 3, 16, 16), 0.5)
    stripes = flat.clone()
    stripes[..., ::2] = 0.6
    assert texture(flat).item() == 0
    assert texture(stripes).item() > texture(stripes * 0.5).item() > 0


def test_the_most_textured_candidate_of_each_crop_is_kept():
    crops = torch.rand(2, 3, 3, 8, 8, generator=torch.Generator().manual_seed(0))  # K=2 candidates of 3 crops
    crops[0, 1] = 0.5  # crop 1's first candidate is flat, its second noisy
    crops[1, 2] = 0.5  # crop 2's second candidate is flat
    chosen = most_textured(crops)
    assert torch.equal(chosen[1], crops[1, 1]) and torch.equal(chosen[2], crops[0, 2])


def test_a_sampler_draws_with_the_generator_it_is_given_and_leaves_its_own():
    photos = [torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))]
    own = torch.Generator().manual_seed(2)
    sampler = CropSampler(photos, 16, torch.device("cpu"), own)
    before = own.get_state()
    other = sampler.sample(4, torch.Generator().manual_seed(3))
    assert torch.equal(own.get_state(), before)
    assert torch.equal(other, sampler.sample(4, torch.Generator().manual_seed(3)))


def test_textured_crops_change_training_and_their_draws_are_saved_to_resume(tmp_path, image_folder):
    plain = train(tiny_config(tmp_path / "plain", image_folder, epochs=1))
    textured = train(tiny_config(tmp_path / "textured", image_folder, epochs=1, texture_candidates=3))
    a, b = (torch.load(run["last"], weights_only=True) for run in (plain, textured))
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["generator"], b["generator"])  # the crops' and noise's own draws are as without
    assert not torch.equal(a["texture_generator"], b["texture_generator"])


def test_fewer_than_one_candidate_is_refused(tmp_path, image_folder):
    with pytest.raises(ValueError, match="texture_candidates must be >= 1"):
        train(tiny_config(tmp_path, image_folder, texture_candidates=0))
