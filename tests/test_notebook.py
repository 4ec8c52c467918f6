"""The notebook runs headless from top to bottom in quick mode and writes its outputs."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

import constants as C
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # `make test-fast` leaves these out


def test_notebook_runs_in_quick_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("DENOISE_QUICK", "1")
    monkeypatch.setenv("DENOISE_IMAGE_DIR", str(tmp_path / "image"))
    monkeypatch.setenv("DENOISE_RUNS_DIR", str(tmp_path / "runs"))
    shipped = C.CHECKPOINT_PATH.stat().st_mtime_ns if C.CHECKPOINT_PATH.exists() else None

    notebook = nbformat.read(ROOT / "animal_img_denoising.ipynb", as_version=4)
    # a cell's limit only catches a hung kernel: the quick training cell took over 600 s on a
    # 2-core AVX2 CPU shared with another job
    NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()

    images = {p.name for p in (tmp_path / "image").iterdir()}
    assert {"loss_plot.png", "val_prediction_1.png", "test_prediction_1.png", "noise_examples.png"} <= images
    assert {f"val_prediction_epoch_{epoch}.png" for epoch in (1, 2, 3)} <= images  # first, middle, last
    assert {"sr_x2_examples.png", "colorize_examples.png"} <= images
    assert ("pretrained_denoise.png" in images) == C.CHECKPOINT_PATH.exists()
    run = tmp_path / "runs" / "notebook_quick"
    assert (run / "best.pth").exists() and (run / "my_noisy_photo_denoised.png").exists()
    mean = json.loads((run / "test_metrics.json").read_text())["mean"]
    assert mean["psnr_denoised"] > mean["psnr_noisy"] + 3  # even three tiny epochs must clearly help
    after = C.CHECKPOINT_PATH.stat().st_mtime_ns if C.CHECKPOINT_PATH.exists() else None
    assert after == shipped  # the shipped checkpoint is never written
