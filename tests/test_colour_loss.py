"""The colour-weighted squared error (`--colour-loss-weight`): the plain MSE at weight 1, colour
errors weighed against grey ones by the weight, the same cost for noise-like errors, and the
option reaches training."""

import pytest
import torch
import torch.nn.functional as F

from model.losses import TrainingLoss, mse, noise_weighted_mse
from model.train import train
from model.train_config import TrainConfig, check_config
from tests.test_train import tiny_config


def test_a_weight_of_one_is_the_plain_mse():
    output, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert mse(output, target).item() == pytest.approx(F.mse_loss(output, target).item())


def test_a_colour_error_weighs_the_weight_times_a_grey_error_of_the_same_size():
    target = torch.zeros(1, 3, 4, 4)
    grey = torch.full_like(target, 0.1)  # the same error on every channel
    colour = torch.zeros_like(target)
    colour[:, 0], colour[:, 1] = 0.1, -0.1  # channels' mean unchanged
    ratio = {w: mse(colour, target, w).item() / mse(grey, target, w).item() for w in (1.0, 3.0)}
    assert ratio[3.0] == pytest.approx(3 * ratio[1.0])


def test_a_grey_image_has_no_colour_to_weigh():
    output, target = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    assert mse(output, target, 3.0).item() == pytest.approx(F.mse_loss(output, target).item())


def test_noise_like_errors_cost_the_same_whatever_the_weight():
    output = 0.05 * torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = torch.zeros_like(output)
    assert mse(output, target, 4.0).item() == pytest.approx(mse(output, target).item(), rel=0.01)


def test_the_noise_weighted_loss_takes_the_colour_weight_too():
    output, target, sigma = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), torch.tensor([5 / 255, 50 / 255])
    expected = noise_weighted_mse(output, target, sigma, floor=10 / 255, colour_weight=2.0)
    loss = TrainingLoss("mse-per-variance", sigma_floor=10 / 255, colour_weight=2.0)
    assert loss(output, target, sigma).item() == pytest.approx(expected.item())
    assert expected.item() != pytest.approx(noise_weighted_mse(output, target, sigma, floor=10 / 255).item())


def test_a_colour_weight_is_refused_with_other_losses_or_below_zero(tmp_path):
    with pytest.raises(ValueError, match="colour weight"):
        TrainingLoss("l1", colour_weight=2.0)
    for loss, weight in (("l1", 2.0), ("mse", 0.0)):
        with pytest.raises(ValueError, match="colour_loss_weight"):
            check_config(TrainConfig(loss=loss, colour_loss_weight=weight, out_dir=str(tmp_path)), world_size=1)


def test_the_colour_weight_changes_training(tmp_path, image_folder):
    plain = train(tiny_config(tmp_path / "plain", image_folder, epochs=1))
    weighted = train(tiny_config(tmp_path / "weighted", image_folder, epochs=1, colour_loss_weight=3.0))
    a, b = (torch.load(run["last"], weights_only=True)["model"] for run in (plain, weighted))
    assert any(not torch.equal(a[k], b[k]) for k in a)
