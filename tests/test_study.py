"""The study's parts: the arms' changes (sampling per photo, the noise-weighted loss, dead
leaves, the DRUNet-like network) and a tiny study run end to end."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from model.dead_leaves import dead_leaves, dead_leaves_set
from model.fine_tune import reset_head
from model.losses import SIGMA_FLOOR, TrainingLoss, noise_weighted_mse
from model.photo_crops import CropSampler
from model.study import ARMS, BASELINE, SIGMAS, run_study
from model.train_config import TrainConfig, check_config
from model.trainer import Trainer
from model.unet import BLIND_DENOISER, DRUNET_LIKE, UNet
from tests.conftest import make_folder
from utils.make_pack import make_pack


def test_photo_sampling_gives_a_small_photo_the_share_of_a_large_one():
    big, small = torch.zeros(3, 256, 256, dtype=torch.uint8), torch.full((3, 32, 32), 255, dtype=torch.uint8)
    draws = {}
    for sampling in ("pixel", "photo"):
        sampler = CropSampler([big, small], 32, torch.device("cpu"), torch.Generator().manual_seed(0), sampling)
        draws[sampling] = (sampler.sample(2000).mean(dim=(1, 2, 3)) == 1).float().mean().item()
    assert draws["pixel"] < 0.05  # 1 tile of 50
    assert 0.45 < draws["photo"] < 0.55


def test_noise_weighted_mse_counts_every_noise_level_the_same():
    target = torch.zeros(2, 3, 8, 8)
    sigma = torch.tensor([5 / 255, 50 / 255])
    output = 0.3 * sigma[:, None, None, None] * torch.ones_like(target)  # 30% of each crop's sigma left
    per_crop = [noise_weighted_mse(output[i : i + 1], target[i : i + 1], sigma[i : i + 1]) for i in range(2)]
    assert per_crop[0].item() == pytest.approx(per_crop[1].item()) == pytest.approx(0.09)
    floored = noise_weighted_mse(torch.full((1, 3, 4, 4), 0.01), torch.zeros(1, 3, 4, 4), torch.zeros(1))
    assert floored.item() == pytest.approx(0.01**2 / SIGMA_FLOOR**2)


def test_a_higher_sigma_floor_weighs_light_crops_like_a_plain_mse_and_scales_down_only_heavy_ones(tmp_path):
    target, sigma = torch.zeros(3, 3, 8, 8), torch.tensor([2 / 255, 5 / 255, 40 / 255])
    output = torch.full_like(target, 0.02)  # the same error in every crop
    loss = TrainingLoss("mse-per-variance", sigma_floor=10 / 255)
    per_crop = [loss(output[i : i + 1], target[i : i + 1], sigma[i : i + 1]).item() for i in range(3)]
    assert per_crop[0] == pytest.approx(per_crop[1]) == pytest.approx(0.02**2 / (10 / 255) ** 2)
    assert per_crop[2] == pytest.approx(per_crop[1] / 16)  # 40/255 is 4x the floor
    assert TrainingLoss("mse-per-variance")(output[:1], target[:1], sigma[:1]).item() > 20 * per_crop[0]
    with pytest.raises(ValueError, match="loss_sigma_floor"):
        check_config(TrainConfig(loss_sigma_floor=0.0, out_dir=str(tmp_path)), world_size=1)


def test_dead_leaves_are_reproducible_covered_and_coloured_from_the_palette():
    palette = np.array([[200, 10, 10], [10, 200, 10], [10, 10, 200]], np.uint8)
    image = dead_leaves(64, palette, np.random.default_rng(0))
    again = dead_leaves(64, palette, np.random.default_rng(0))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.array_equal(image, again)
    # every pixel is near some palette colour (shading and antialiasing move it a little), none is black
    distance = np.abs(image[:, :, None].astype(int) - palette[None, None].astype(int)).max(-1).min(-1)
    assert np.median(distance) < 20 and image.max(-1).min() > 0
    photos = [torch.full((3, 16, 16), 128, dtype=torch.uint8)]
    assert [t.shape for t in dead_leaves_set(photos, 2, 32, seed=1)] == [(3, 32, 32)] * 2


def test_a_synthetic_fraction_takes_its_share_of_every_batch():
    black, white = torch.zeros(3, 64, 64, dtype=torch.uint8), torch.full((3, 64, 64), 255, dtype=torch.uint8)
    device, generator = torch.device("cpu"), torch.Generator().manual_seed(0)
    config = TrainConfig(synthetic_fraction=0.25, batch_size=8, crop_size=32)
    model = UNet(**{**BLIND_DENOISER.__dict__, "base_channels": 4, "depth": 2})
    trainer = Trainer(model, config, device, [black])
    trainer.synthetic = CropSampler([white], 32, device, generator)  # told apart from the photos at a glance
    crops = trainer.sample(8)
    assert crops.mean(dim=(1, 2, 3)).tolist() == [0.0] * 6 + [1.0] * 2


def test_the_drunet_like_network_has_residual_blocks_strided_downsampling_and_no_biases():
    model = UNet(DRUNET_LIKE)
    names = [name for name, _ in model.named_parameters()]
    assert not any(name.endswith("bias") for name in names)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert model(torch.rand(1, 3, 37, 45), 0.1).shape == (1, 3, 37, 45)
    reset_head(model)  # a fine-tune's zeroed head works without a bias: the network returns its input
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(model(x, 0.1), x)
    assert sum(p.numel() for p in UNet(BLIND_DENOISER).parameters()) == 7_760_451  # the shipped network's trunk


@pytest.mark.slow
def test_a_tiny_study_trains_its_arms_scores_them_against_cbm3d_and_writes_the_table(tmp_path):
    pretrain = tmp_path / "pretrain"
    make_folder(pretrain / "photos", {"a": 5}, seed=1, size=(130, 140))
    files = sorted(p.relative_to(pretrain).as_posix() for p in pretrain.rglob("*.png"))
    (pretrain / "split.json").write_text(json.dumps({"train": files[:3], "val": files[3:], "test": []}))
    pack = tmp_path / "pack"
    make_pack(pretrain, pack, budget_bytes=2**22)
    study = tmp_path / "study"
    small = {"crop_size": 32, "batch_size": 2, "init": "", "model": dataclasses.replace(BLIND_DENOISER, depth=2)}
    text = run_study(["baseline", "a-per-photo"], 0.02, 2, study, pack=pack, pretrain=pretrain, overrides=small)
    assert sorted(p.name for p in (study / "data" / "lossless" / "train").iterdir()) == [
        f.replace("/", "__") for f in files[:3]
    ]
    cbm3d = json.loads((study / "cbm3d.json").read_text())
    assert len(cbm3d) == 2 * len(SIGMAS)  # two validation photos, five noise levels, computed once
    for arm in ("baseline", "a-per-photo"):
        result = json.loads((study / arm / "result.json").read_text())
        assert set(result["psnr"]) == set(SIGMAS) and result["steps"] > 0
        assert f"| {arm} | {ARMS[arm][1]} |" in text
    assert (study / "table.md").read_text().strip() == text and (study / "margins.png").stat().st_size > 0
    # a second call trains nothing more: the arms are done
    before = (study / "baseline" / "last.pth").stat().st_mtime
    run_study(["baseline"], 0.02, 1, study, pack=pack, pretrain=pretrain, overrides=small)
    assert (study / "baseline" / "last.pth").stat().st_mtime == before


def test_every_arm_changes_the_baseline_or_names_its_reference():
    for name, (reference, suspect, change) in ARMS.items():
        assert suspect
        assert reference in ("", *ARMS)
        assert name == "baseline" or change, name
        assert set(change) <= {*TrainConfig.__dataclass_fields__, "pack"}
    assert set(BASELINE) <= set(TrainConfig.__dataclass_fields__)
