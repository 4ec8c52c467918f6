"""The shipped checkpoint: safe loading in a fresh process, its quality against CBM3D on the
chelsea cat, torch.hub and ONNX. It ships in git, so these tests fail (not skip) without it."""

import subprocess
import sys

import pytest
import torch

import constants as C
from model.denoise import load_pretrained
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # `make test-fast` leaves these out

FRESH_PROCESS = """
import numpy as np, torch, bm3d, skimage.data
import constants as C
from model.denoise import denoise, load_pretrained

state = torch.load(C.CHECKPOINT_PATH, map_location="cpu", weights_only=True)
assert state["model_config"]["noise_level_input"] and state["model_config"]["residual"]
assert sum(v.numel() for v in state["model"].values()) < 10_000_000
model = load_pretrained("cpu")
assert next(model.parameters()).device.type == "cpu" and not model.training
clean = skimage.data.chelsea().astype(np.float32) / 255
noisy = (clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)).astype(np.float32)
psnr = lambda x: 10 * np.log10(1 / np.mean((np.clip(x, 0, 1) - clean) ** 2))
ours, ours_x8 = (psnr(denoise(noisy, model, 25 / 255, ensemble=e)) for e in (False, True))
print(f"ours {ours:.3f} ours_x8 {ours_x8:.3f} cbm3d {psnr(bm3d.bm3d_rgb(noisy, 25 / 255)):.3f}")
"""


def test_loads_safely_in_a_fresh_process_and_comes_close_to_cbm3d_on_chelsea():
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    _, ours, _, ours_x8, _, cbm3d = result.stdout.split()
    # The shipped weights now beat CBM3D here: measured 32.73 dB (x8: 32.85)
    # vs 32.64 dB on 2026-12-02 (the fourth GPU run's weights: 32.45 vs 32.64 on 2026-11-26).
    # This guards the level reached.
    assert float(ours) > float(cbm3d)
    assert float(ours_x8) > float(ours)  # averaging 8 orientations helps a trained denoiser


def test_torch_hub_gives_the_pretrained_weights():
    hub = torch.hub.load(str(ROOT), "unet", source="local", pretrained=True, device="cpu")
    shipped = load_pretrained("cpu").state_dict()
    assert all(torch.equal(value, shipped[key]) for key, value in hub.state_dict().items())


def test_onnx_export_of_the_shipped_model_matches_pytorch(tmp_path):
    target = tmp_path / "trained_unet.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "model.export", "--onnx", "-o", str(target)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert target.stat().st_size > 0 and "max difference from PyTorch" in result.stdout
    assert C.CHECKPOINT_PATH.exists()
