"""Super-resolution and colorization: degradations, fine-tuning with frozen layers, losses."""

import dataclasses
import random

import pytest
import torch
from torch import nn

from benchmarks.eval_tasks import markdown
from model.checkpoint import load_model, save_checkpoint
from model.fine_tune import encoder_levels, reset_head, set_trainable, wants_new_head
from model.losses import PerceptualLoss, TrainingLoss, vgg_features
from model.metrics import psnr
from model.tasks import TASK_LEVEL, Colorize, Denoise, SuperResolution, downscale, upscale
from model.train import TrainConfig, train
from model.unet import UNet


def smooth(height=32, width=48):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([0.5 + 0.4 * torch.sin(4 * xx), 0.5 + 0.4 * torch.cos(3 * yy), xx * yy])


@pytest.mark.parametrize("scale", [2, 4])
def test_super_resolution_input_is_the_bicubic_upscale_of_the_downscale(scale):
    clean = smooth()
    degraded, sigma = SuperResolution(scale).degrade(clean, random.Random(0), torch.Generator())
    assert degraded.shape == clean.shape and sigma == TASK_LEVEL
    assert downscale(clean, scale).shape[-2:] == (32 // scale, 48 // scale)
    torch.testing.assert_close(degraded, upscale(downscale(clean, scale), (32, 48)))
    assert 20 < psnr(degraded, clean).item() < 100  # smooth: close, but not identical
    with pytest.raises(ValueError, match="scale must be"):
        SuperResolution(5)


def test_colorize_input_is_gray_in_three_channels():
    gray, level = Colorize().degrade(smooth(), random.Random(0), torch.Generator())
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert level == TASK_LEVEL


def test_sr_tells_the_network_its_noise_when_above_the_task_level():
    _, level = SuperResolution(2, noise_sigma=0.05).degrade(smooth(), random.Random(0), torch.Generator())
    assert level == 0.05 > TASK_LEVEL > 0


def residual_denoiser() -> UNet:
    return UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False)


@pytest.mark.parametrize(
    ("task", "choice", "init", "expected"),
    [
        ("sr", "auto", "w.pth", True),
        ("colorize", "auto", "w.pth", True),
        ("denoise", "auto", "w.pth", False),
        ("sr", "auto", "", False),  # nothing to reset when training from scratch
        ("sr", "no", "w.pth", False),
        ("denoise", "yes", "w.pth", True),
    ],
)
def test_a_new_task_on_init_weights_gets_a_new_head(task, choice, init, expected):
    config = TrainConfig(task=task, reset_head=choice, init=init)
    assert wants_new_head(config, residual_denoiser()) is expected
    plain = UNet(base_channels=4, depth=2)  # not residual: a zero head would output zeros, so auto leaves it
    assert wants_new_head(TrainConfig(task="sr", init="w.pth"), plain) is False


def test_a_zeroed_head_returns_the_input_and_still_has_gradients():
    torch.manual_seed(0)
    model = residual_denoiser()
    image = torch.rand(2, 3, 16, 16)
    assert not torch.equal(model(image, TASK_LEVEL), image)
    reset_head(model)
    assert torch.equal(model(image, TASK_LEVEL), image)
    (model(image, TASK_LEVEL) - image.flip(-1)).abs().mean().backward()
    assert model.out_conv.weight.grad.abs().sum() > 0  # the head learns from the first step


def test_sigmoid_output_is_bounded_and_not_residual():
    model = UNet(base_channels=4, depth=2, final_activation="sigmoid")
    out = model(torch.randn(1, 3, 16, 16) * 10)
    assert out.min() > 0 and out.max() < 1
    with pytest.raises(ValueError, match="final_activation"):
        UNet(residual=True, final_activation="sigmoid")


def test_gradual_unfreezing_goes_from_the_deepest_level_up():
    model = UNet(base_channels=4, depth=2)
    levels = encoder_levels(model)
    trainable = lambda: [all(p.requires_grad for p in level.parameters()) for level in levels]  # noqa: E731
    assert set_trainable(model, 2, freeze_epochs=2) == 3 and trainable() == [False, False, False]
    assert set_trainable(model, 3, freeze_epochs=2) == 2 and trainable() == [False, False, True]
    assert set_trainable(model, 9, freeze_epochs=2) == 0 and trainable() == [True, True, True]
    assert set_trainable(model, 1, freeze_epochs=0) == 0 and trainable() == [True, True, True]


def warm_start(tmp_path, image_folder, name: str, **settings) -> tuple[UNet, TrainConfig]:
    """A tiny blind denoiser saved as a checkpoint, and a run of `settings` that starts from it."""
    start = UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False)
    init = save_checkpoint(tmp_path / "denoiser.pth", model=start.state_dict(), model_config=start.config)
    config = TrainConfig(
        data_dir=str(image_folder),
        out_dir=str(tmp_path / name),
        image_dir=str(tmp_path / "img"),
        init=str(init),
        lr=1e-3,
        crop_size=16,
        eval_crop_size=16,
        batch_size=4,
        **settings,
    )
    return start, config


def test_sr_fine_tuning_keeps_the_encoder_fixed_while_frozen(tmp_path, image_folder):
    settings = {
        "task": "sr",
        "scale": 2,
        "freeze_epochs": 2,
        "epochs": 2,
        "encoder_lr_factor": 0.1,
        "loss": "charbonnier",
    }
    start, config = warm_start(tmp_path, image_folder, "sr", **settings)
    history = train(config)["history"]
    assert [h["frozen_levels"] for h in history] == [3, 3, 3]  # the warm start, then two epochs
    tuned, checkpoint = load_model(tmp_path / "sr" / "last.pth")
    assert checkpoint["model_config"] == start.config  # the architecture came with --init
    before, after = start.state_dict(), tuned.state_dict()
    encoder = [k for k in before if k.split(".")[0] in {"in_conv", "enc_1", "enc_2"}]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    assert not all(torch.equal(before[k], after[k]) for k in before if k not in encoder)
    assert after["out_conv.weight"].abs().max() < before["out_conv.weight"].abs().max() / 10  # the new head
    groups = checkpoint["optimizer"]["param_groups"]
    assert groups[1]["lr"] == pytest.approx(0.1 * groups[0]["lr"]) and groups[1]["lr_scale"] == 0.1


def test_refine_blocks_grown_on_an_init_train_at_their_own_rate(tmp_path, image_folder):
    settings = {"add_refine_blocks": 1, "refine_lr_factor": 10.0, "sigma": 0.0, "sigma_max": 0.2, "epochs": 1}
    start, config = warm_start(tmp_path, image_folder, "grown", **settings)
    train(config)
    tuned, checkpoint = load_model(tmp_path / "grown" / "last.pth")
    assert checkpoint["model_config"] == {**start.config, "refine_blocks": 1}
    assert tuned.refine[0].body[-1].weight.abs().max() > 0  # the block has left the identity
    groups = checkpoint["optimizer"]["param_groups"]
    assert len(groups) == 3 and groups[2]["lr"] == pytest.approx(10 * groups[0]["lr"])
    train(dataclasses.replace(config, epochs=2, resume=True))  # a grown run resumes
    with pytest.raises(ValueError, match="add_refine_blocks"):
        train(dataclasses.replace(config, init="", out_dir=str(tmp_path / "scratch")))


def test_refine_only_trains_the_grown_blocks_and_leaves_the_trunk_as_it_was(tmp_path, image_folder):
    settings = {"add_refine_blocks": 1, "refine_only": True, "sigma": 0.0, "sigma_max": 0.2, "epochs": 1}
    start, config = warm_start(tmp_path, image_folder, "refine-only", **settings)
    assert train(config)["history"][-1]["frozen_levels"] == 3
    tuned = load_model(tmp_path / "refine-only" / "last.pth")[0]
    before, after = start.state_dict(), tuned.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)  # the whole trunk, head included
    assert tuned.refine[0].body[-1].weight.abs().max() > 0  # the block has left the identity
    no_photos = {"data_dir": str(tmp_path / "missing"), "out_dir": str(tmp_path / "none")}
    with pytest.raises(ValueError, match="no refine blocks"):  # refused before any photo is read
        train(dataclasses.replace(config, add_refine_blocks=0, **no_photos))
    with pytest.raises(ValueError, match="freeze_epochs"):
        train(dataclasses.replace(config, freeze_epochs=1, **no_photos))


def test_light_only_trains_the_light_noise_blocks_and_leaves_heavier_noise_as_it_was(tmp_path, image_folder):
    settings = {"add_refine_blocks": 1, "add_light_refine": True, "light_only": True, "light_sigma": 0.05}
    start, config = warm_start(tmp_path, image_folder, "light-only", sigma=0.0, sigma_max=0.1, epochs=1, **settings)
    train(config)
    tuned, checkpoint = load_model(tmp_path / "light-only" / "last.pth")
    assert checkpoint["model_config"] == {**start.config, "refine_blocks": 1, "light_refine": True, "light_sigma": 0.05}
    after = tuned.state_dict()
    assert all(torch.equal(value, after[key]) for key, value in start.state_dict().items())
    assert torch.equal(tuned.refine[0].body[-1].weight, torch.zeros_like(tuned.refine[0].body[-1].weight))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.equal(tuned(x, 0.02), start(x, 0.02))  # the light blocks have moved
        assert torch.equal(tuned(x, 0.1), start(x, 0.1))  # from twice light_sigma, the start's output
    no_photos = {"data_dir": str(tmp_path / "missing"), "out_dir": str(tmp_path / "none")}
    with pytest.raises(ValueError, match="choose one"):
        train(dataclasses.replace(config, refine_only=True, **no_photos))
    with pytest.raises(ValueError, match="grow an --init network"):
        train(dataclasses.replace(config, init="", add_refine_blocks=0, **no_photos))


def test_light_only_with_a_light_network_trains_the_whole_copy_and_leaves_heavier_noise_as_it_was(
    tmp_path, image_folder
):
    settings = {"add_refine_blocks": 1, "add_light_refine": True, "light_sigma": 0.05, "light_lr_factor": 30.0}
    settings |= {"add_light_network": True, "light_only": True}
    start, config = warm_start(tmp_path, image_folder, "copy", sigma=0.0, sigma_max=0.1, epochs=1, **settings)
    train(config)
    tuned, checkpoint = load_model(tmp_path / "copy" / "last.pth")
    assert checkpoint["model_config"]["light_network"] is True
    after = tuned.state_dict()
    assert all(torch.equal(after[key], value) for key, value in start.state_dict().items())  # frozen
    assert not torch.equal(tuned.light_network.in_conv.conv[0].weight, tuned.in_conv.conv[0].weight)  # the trunk
    groups = checkpoint["optimizer"]["param_groups"]
    light_blocks = {id(p) for p in tuned.light_network.light_refine.parameters()}
    assert [g["lr_scale"] for g in groups][-1] == 30.0 and len(groups[-1]["params"]) == 2 * len(light_blocks)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.equal(tuned(x, 0.02), start(x, 0.02))  # the copy has moved
        assert torch.equal(tuned(x, 0.1), start(x, 0.1))  # from twice light_sigma, the start's output


def test_light_lr_factor_gives_the_light_blocks_a_rate_of_their_own(tmp_path, image_folder):
    settings = {"add_refine_blocks": 1, "add_light_refine": True, "light_sigma": 0.05, "refine_lr_factor": 1.0}
    _, config = warm_start(tmp_path, image_folder, "split", sigma=0.0, sigma_max=0.2, epochs=1, **settings)
    train(dataclasses.replace(config, light_lr_factor=30.0))
    tuned, checkpoint = load_model(tmp_path / "split" / "last.pth")
    groups = checkpoint["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0, 1.0, 30.0]
    assert groups[3]["lr"] == pytest.approx(30 * groups[2]["lr"])
    assert len(groups[3]["params"]) == len(list(tuned.light_refine.parameters()))
    assert len(groups[2]["params"]) == len(list(tuned.refine.parameters()))
    train(dataclasses.replace(config, light_lr_factor=30.0, epochs=2, resume=True))  # and it resumes
    train(dataclasses.replace(config, out_dir=str(tmp_path / "one-group")))
    assert len(load_model(tmp_path / "one-group" / "last.pth")[1]["optimizer"]["param_groups"]) == 3  # as before


def test_colorization_trains_from_the_cli_fields(tmp_path, image_folder):
    config = TrainConfig(
        data_dir=str(image_folder),
        out_dir=str(tmp_path / "color"),
        image_dir=str(tmp_path / "img"),
        task="colorize",
        base_channels=4,
        depth=2,
        epochs=1,
        crop_size=16,
        eval_crop_size=16,
        batch_size=4,
    )
    assert train(config)["history"][0]["train_loss"] > 0


def test_perceptual_loss_without_vgg_weights_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="VGG16 ImageNet weights not found.*--perceptual-weight 0"):
        vgg_features(tmp_path / "missing.pth")


def test_perceptual_loss_with_a_fake_feature_extractor():
    torch.manual_seed(0)
    fake = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    loss = TrainingLoss("l1", perceptual_weight=0.5, features=fake)
    output = torch.rand(2, 3, 16, 16, requires_grad=True)
    target = torch.rand(2, 3, 16, 16)
    value = loss(output, target)
    assert value > nn.functional.l1_loss(output, target)
    value.backward()
    assert output.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in fake.parameters())  # the extractor stays frozen
    assert PerceptualLoss(fake)(target, target).item() == 0


def test_task_table_scores_sr_on_luma_and_colorization_on_rgb():
    row = {"set": "standard", "baseline": [30.0, 29.0, 0.8], "ours": [31.5, 29.2, 0.9]}
    sr, colour = markdown([row | {"run": "sr-x2", "sr": True}, row | {"run": "colorize", "sr": False}]).splitlines()[2:]
    assert sr.endswith("| 30.00 / 29.00 / 0.800 | 31.50 / 29.20 / 0.900 | +1.50 dB (Y) |")
    assert colour.endswith("| - / 29.00 / 0.800 | - / 29.20 / 0.900 | +0.20 dB (RGB) |")


@pytest.mark.parametrize("sigma", [(0.0, 25.0), (0.2, 0.1), (-0.1, 0.5)])
def test_noise_levels_off_the_0_1_scale_or_reversed_are_refused(sigma):
    with pytest.raises(ValueError, match=r"sigma must be within \[0, 1\] on the \[0, 1\] pixel scale"):
        Denoise(sigma)
