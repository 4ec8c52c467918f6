"""Figures: grids sized to their images (no empty bands between rows), titles that say what is
shown, a blind denoiser's training curves per noise level."""

import torch
from PIL import Image

from model.plots import plot_grid, plot_history, plot_predictions, prediction_titles


def test_a_grid_of_wide_images_leaves_no_empty_bands(tmp_path):
    rows = [[torch.rand(3, 100, 300)] * 3 for _ in range(4)]  # images three times wider than tall
    with Image.open(plot_grid(rows, [["a", "b", "c"]] * 4, tmp_path / "grid.png")) as figure:
        # 4 rows of 1/3-high images plus titles; square cells (the old layout) would make it 4/3 as high as wide
        assert figure.height / figure.width < 0.65


def test_predictions_are_titled_with_their_psnr(tmp_path):
    clean = torch.full((3, 32, 32), 0.5)
    noisy, denoised = clean + 0.1, clean + 0.01  # PSNR 20 dB and 40 dB
    assert prediction_titles(noisy, denoised, clean, "cat") == ["cat: noisy (20.00 dB)", "denoised (40.00 dB)", "clean"]
    with Image.open(plot_predictions([noisy], [denoised], [clean], tmp_path / "p.png", names=["cat"])) as figure:
        assert figure.width > 2 * figure.height  # one row of three square images


def test_a_blind_denoisers_history_gets_a_panel_per_noise_level(tmp_path):
    plain = [{"step": step, "val_loss": 1e-3, "val_psnr": 30.0, "val_psnr_noisy": 20.0} for step in (0, 10)]
    blind = [h | {"val_psnr_by_sigma": {"5/255": 41.0 + h["step"] / 50, "50/255": 30.0}} for h in plain]
    plain_path, blind_path = plot_history(plain, tmp_path / "plain.png"), plot_history(blind, tmp_path / "blind.png")
    with Image.open(plain_path) as two, Image.open(blind_path) as three:
        assert three.height == two.height and three.width > 1.35 * two.width  # the third panel
