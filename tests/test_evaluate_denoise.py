import json
import math
import subprocess
import sys

import pytest
from PIL import Image

from model.checkpoint import save_checkpoint
from model.denoise import denoise_file
from model.evaluate import evaluate_run, markdown_table
from model.tasks import TASK_LEVEL
from model.train import TrainConfig, train
from model.unet import UNet
from tests.conftest import ROOT


@pytest.fixture
def small_model_file(tmp_path):
    model = UNet(base_channels=4, depth=2)
    return save_checkpoint(tmp_path / "small.pth", model=model.state_dict(), model_config=model.config)


def small_run(tmp_path, image_folder, name, **settings):
    config = TrainConfig(
        data_dir=str(image_folder),
        out_dir=str(tmp_path / name),
        image_dir=str(tmp_path / "img"),
        base_channels=4,
        depth=2,
        crop_size=16,
        eval_crop_size=16,
        batch_size=4,
        epochs=1,
        **settings,
    )
    train(config)
    return evaluate_run(tmp_path / name, image_dir=tmp_path / "img")


def test_evaluate_run_writes_grids_metrics_and_a_table(tmp_path, image_folder):
    rows = small_run(tmp_path, image_folder, "run")
    assert len(rows) == 5  # the default split of a small folder holds out 15% of its 36 images
    assert {"val_prediction_1.png", "test_prediction_1.png", "test_prediction_2.png"} <= {
        p.name for p in (tmp_path / "img").iterdir()
    }
    saved = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert saved["mean"]["psnr_noisy"] == pytest.approx(sum(r["psnr_noisy"] for r in rows) / len(rows))
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 2 and "**mean**" in table


def test_denoise_file_never_overwrites_the_input_or_an_output(tmp_path):
    model = UNet(base_channels=4, depth=2)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (24, 18), "white").save(photo)
    original = photo.read_bytes()
    with pytest.raises(ValueError, match="would overwrite the input"):
        denoise_file(model, photo, tmp_path / "." / "photo.png")
    assert photo.read_bytes() == original
    out = denoise_file(model, photo, tmp_path / "out" / "photo_denoised.png")
    assert Image.open(out).size == (24, 18)
    with pytest.raises(FileExistsError, match="overwrite"):
        denoise_file(model, photo, out)
    denoise_file(model, photo, out, overwrite=True)


def test_cli_continues_past_a_bad_file_and_fails_at_the_end(tmp_path, small_model_file):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (20, 20), "red").save(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not an image")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "model.denoise",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--checkpoint",
            str(small_model_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "bad.jpg: cannot read image" in result.stdout + result.stderr
    assert "1 of 2 images denoised" in result.stdout
    assert (tmp_path / "out" / "good_denoised.png").exists()


def test_cli_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    fake = tmp_path / "weights.pth"
    fake.write_text("hello")
    result = subprocess.run(
        [sys.executable, "-m", "model.denoise", str(fake), "-o", str(tmp_path), "--checkpoint", str(fake)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {fake}: not a PyTorch checkpoint")


def test_a_blind_run_is_evaluated_over_its_sigma_range(tmp_path, image_folder):
    blind = {"sigma": 0.0, "sigma_max": 0.5, "noise_level_input": True, "residual": True, "batch_norm": False}
    rows = small_run(tmp_path, image_folder, "blind", **blind)
    sigmas = [r["sigma"] for r in rows]
    assert all(0 <= s <= 0.5 for s in sigmas) and len(set(sigmas)) > 1
    assert all(math.isfinite(r["psnr_noisy"]) for r in rows)


def test_a_super_resolution_run_is_scored_as_super_resolution(tmp_path, image_folder):
    rows = small_run(tmp_path, image_folder, "sr", task="sr", scale=2)
    assert all(r["sigma"] == pytest.approx(TASK_LEVEL) for r in rows)  # the level the network is told
    assert min(r["psnr_noisy"] for r in rows) > 15  # the bicubic input, not sigma-0.5 noise (~6 dB)
