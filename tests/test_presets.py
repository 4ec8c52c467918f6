"""The presets: each trains (shrunk to seconds on tiny photos) and its run is evaluated the same way."""

import json

import pytest
import torch

from model.checkpoint import save_checkpoint
from model.evaluate import evaluate_run
from model.train import parse_args, train
from model.train_config import PRESETS, TrainConfig
from model.unet import UNet
from tests.conftest import make_folder

SMALL_UNET = {"base_channels": 4, "depth": 2, "noise_level_input": True, "residual": True, "batch_norm": False}
# what makes a preset fit a test: tiny crops and batches, seconds instead of minutes, one thread
SHRUNK = {"crop_size": 32, "eval_crop_size": 48, "batch_size": 4, "threads": 1, "device": "cpu", **SMALL_UNET}


@pytest.fixture
def photo_set(tmp_path):
    """A set with its own split (as data/pretrain): 4 train, 2 val, 2 test photos."""
    root = make_folder(tmp_path / "set" / "photos", {"p": 8}, seed=3, size=(64, 80)).parent
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    (root / "split.json").write_text(json.dumps({"train": files[:4], "val": files[4:6], "test": files[6:]}))
    return root


@pytest.fixture
def small_init(tmp_path):
    torch.manual_seed(0)
    model = UNet(**SMALL_UNET)
    return save_checkpoint(tmp_path / "init.pth", model=model.state_dict(), model_config=model.config)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_trains_and_its_run_is_evaluated(preset, photo_set, small_init, tmp_path):
    settings = {**SHRUNK, "data_dir": str(photo_set), "out_dir": str(tmp_path / preset), "image_dir": str(tmp_path)}
    if PRESETS[preset][1].get("init"):
        settings |= {"init": str(small_init), "minutes": 0.01, "val_seconds": 0.3}
    else:
        settings |= {"epochs": 1}
    config = TrainConfig.preset(preset, **settings)
    result = train(config)
    assert result["steps"] > 0 and (tmp_path / preset / "best.pth").exists()
    rows = evaluate_run(tmp_path / preset, "cpu", tmp_path / "img")
    assert len(rows) == 2 and all(row["psnr_denoised"] > 0 for row in rows)


def test_a_preset_sets_defaults_that_flags_still_override():
    gpu = parse_args(["--preset", "gpu"])
    assert (gpu.batch_size, gpu.lr, gpu.minutes, gpu.sampling, gpu.ema_decay) == (256, 1e-4, 60.0, "pixel", 0.999)
    assert parse_args(["--preset", "gpu", "--lr", "3e-4"]).lr == 3e-4
    assert parse_args(["--preset", "demo"]).model.base_channels == 32 and parse_args(["--preset", "demo"]).epochs == 12
    assert parse_args([]) == TrainConfig()
    with pytest.raises(ValueError, match="unknown preset 'laptop'"):
        TrainConfig.preset("laptop")
