"""Figures: grids sized to their images (no empty bands between rows), titles that say what is shown."""

import torch
from PIL import Image

from model.plots import plot_grid, plot_predictions, prediction_titles


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
