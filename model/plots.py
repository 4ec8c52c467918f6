"""Figures people would rather look at than read: training curves and prediction grids."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; the notebook shows them with IPython.display
import matplotlib.pyplot as plt
import torch

from model.files import atomic_write
from model.metrics import psnr


def save_figure(figure: plt.Figure, path: str | Path) -> Path:
    """Save through a temporary file so a reader never sees half a PNG."""
    try:
        with atomic_write(path, suffix=".png") as file:
            figure.savefig(file, dpi=110, bbox_inches="tight")
    finally:
        plt.close(figure)
    return Path(path)


def plot_history(history: Sequence[dict], path: str | Path) -> Path:
    """Loss (train and val) and validation PSNR against the step, side by side; a warm start's
    first validation (before any step) has no training loss. A blind denoiser's history adds a
    third panel, each noise level's change since the first validation: the mean PSNR follows
    heavy noise, and a warm start's light-noise gain or loss shows only there."""
    trained = [h for h in history if "train_loss" in h]
    steps = [h["step"] for h in history]
    by_level = [h for h in history if "val_psnr_by_sigma" in h]
    figure, (loss_axis, psnr_axis, *level_axes) = plt.subplots(
        1, 3 if by_level else 2, figsize=(16.5 if by_level else 11, 4)
    )
    loss_axis.plot([h["step"] for h in trained], [h["train_loss"] for h in trained], "o-", label="train")
    loss_axis.plot(steps, [h["val_loss"] for h in history], "o-", label="validation")
    loss_axis.set(xlabel="step", ylabel="loss (validation: MSE)", title="Loss", yscale="log")
    loss_axis.legend()
    psnr_axis.plot(steps, [h["val_psnr"] for h in history], "o-", label="denoised")
    if any("val_psnr_ema" in h for h in history):
        psnr_axis.plot(steps, [h.get("val_psnr_ema", math.nan) for h in history], "o-", label="moving average")
    psnr_axis.plot(steps, [h["val_psnr_noisy"] for h in history], "--", color="gray", label="input")
    psnr_axis.set(xlabel="step", ylabel="PSNR (dB)", title="Validation PSNR")
    psnr_axis.legend()
    for axis in level_axes:
        first = by_level[0]["val_psnr_by_sigma"]
        for level, start in first.items():
            change = [h["val_psnr_by_sigma"][level] - start for h in by_level]
            axis.plot([h["step"] for h in by_level], change, "o-", label=f"sigma {level}")
        axis.axhline(0.0, color="gray", linewidth=0.8)
        axis.set(xlabel="step", ylabel="PSNR change (dB)", title="Validation PSNR per noise level, since the first")
        axis.legend()
    for axis in (loss_axis, psnr_axis, *level_axes):
        axis.grid(alpha=0.3)
    return save_figure(figure, path)


def plot_grid(rows: Sequence[Sequence[torch.Tensor]], titles: Sequence[Sequence[str]], path: str | Path) -> Path:
    """Images (3, H, W) in [0, 1] laid out in rows, each with a title; values are clipped for display."""
    columns = max(len(row) for row in rows)
    # each row as tall as its tallest image at 3.4 inches wide (plus its titles), so no empty bands
    heights = [3.4 * max(image.shape[-2] / image.shape[-1] for image in row) + 0.4 for row in rows]
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(3.4 * columns, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for axis_row, images, names in zip(axes, rows, titles, strict=True):
        for axis in axis_row:
            axis.axis("off")
        for axis, image, title in zip(axis_row, images, names, strict=True):
            axis.imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_predictions(
    noisy: Sequence[torch.Tensor],
    denoised: Sequence[torch.Tensor],
    clean: Sequence[torch.Tensor],
    path: str | Path,
    names: Sequence[str] | None = None,
) -> Path:
    """One row per image: noisy | denoised | clean, with PSNR against the clean image.

    Noisy inputs are clipped for display only; their PSNR is computed unclipped.
    """
    titles = [
        prediction_titles(*images, names[row] if names else "")
        for row, images in enumerate(zip(noisy, denoised, clean, strict=True))
    ]
    return plot_grid(list(zip(noisy, denoised, clean, strict=True)), titles, path)


def prediction_titles(noisy: torch.Tensor, denoised: torch.Tensor, clean: torch.Tensor, name: str = "") -> list[str]:
    """Titles of one noisy | denoised | clean row: what each image is, and its PSNR against the clean one."""
    label = f"{name}: " if name else ""
    return [
        f"{label}noisy ({psnr(noisy, clean).item():.2f} dB)",
        f"denoised ({psnr(denoised, clean).item():.2f} dB)",
        "clean",
    ]


def plot_margins(panels: dict[str, dict[str, dict[str, float]]], path: str | Path) -> Path:
    """PSNR minus CBM3D (dB) against the noise level (x/255): one panel per title, one line per entry."""
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for axis, (title, margins) in zip(axes[0], panels.items(), strict=True):
        axis.set_prop_cycle(color=plt.cm.tab20.colors)  # a dozen arms, each its own colour
        for name, by_sigma in margins.items():
            axis.plot([float(s) for s in by_sigma], list(by_sigma.values()), "o-", label=name)
        sigmas = list(next(iter(margins.values())))
        axis.axhline(0, color="gray", linewidth=1)
        axis.set(xscale="log", xlabel="noise sigma (x/255)", ylabel="PSNR minus CBM3D (dB)", title=title)
        axis.set_xticks([float(s) for s in sigmas], labels=sigmas)
        axis.minorticks_off()
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    return save_figure(figure, path)
