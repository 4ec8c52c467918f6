import json
import subprocess
import sys

import pytest
from PIL import Image

from model.checkpoint import save_checkpoint
from model.denoise import denoise_file
from model.evaluate import evaluate_run, markdown_table
from model.train import TrainConfig, train
from model.unet import UNet
from tests.conftest import ROOT


@pytest.fixture
def small_model_file(tmp_path):
    model = UNet(base_channels=4, depth=2)
    return save_checkpoint(tmp_path / "small.pth", model=model.state_dict(), model_config=model.config)


def test_evaluate_run_writes_grids_metrics_and_a_table(tmp_path, image_folder):
    config = TrainConfig(
        data_dir=str(image_folder),
        out_dir=str(tmp_path / "run"),
        image_dir=str(tmp_path / "img"),
        base_channels=4,
        depth=2,
        crop_size=16,
        eval_crop_size=16,
        batch_size=4,
        epochs=1,
    )
    train(config)
    rows = evaluate_run(tmp_path / "run", image_dir=tmp_path / "img")
    assert len(rows) == 12  # the default split of a small folder holds out 12 test images
    assert {"val_prediction_1.png", "test_prediction_1.png", "test_prediction_2.png"} <= {
        p.name for p in (tmp_path / "img").iterdir()
    }
    saved = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert saved["mean"]["psnr_noisy"] == pytest.approx(sum(r["psnr_noisy"] for r in rows) / 12)
    table = markdown_table(rows)
    assert table.count("\n") == 12 + 2 and "**mean**" in table


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
