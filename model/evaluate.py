"""Evaluate a trained run: PSNR/SSIM of noisy input vs denoised output, and prediction grids.

    python -m model.evaluate --run runs/demo            # test table + image/{val,test}_prediction_N.png
    python -m model.evaluate --run runs/gpu             # any preset's run

A run of `model/train.py` is scored on the test photos of the split it saved (split.json), with
its own task and noise: a blind denoiser blind over its noise range. A run on a pack (which
holds no test photos) is scored on the test photos of the set the pack came from.

Noise is seeded per image and the noisy input is not clipped (unless the run trained with
--clip-noisy), so the numbers are the same on every machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import constants as C
from model.checkpoint import CheckpointError, load_model
from model.config_flags import make_parser
from model.dataset import NoisyImageDataset, split_datasets
from model.device import pick_device
from model.files import write_json_atomic
from model.metrics import psnr, ssim
from model.plots import plot_predictions
from model.split import load_split
from model.train_config import TrainConfig

ROWS_PER_GRID = 4


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: NoisyImageDataset,
    device: str | torch.device = "cpu",
    plot_prefix: str | None = None,
    image_dir: str | Path = C.IMAGE_DIR,
    max_plots: int = 2,
) -> list[dict]:
    """One row per image: name, sigma, PSNR and SSIM of the noisy input and of the output.

    With `plot_prefix`, the first `max_plots` grids of ROWS_PER_GRID images are written to
    image_dir/{plot_prefix}_prediction_{n}.png (n from 1).
    """
    model.eval().to(device)
    rows, shown = [], []
    for index in tqdm(range(len(dataset)), desc="evaluating", leave=False):
        noisy, clean, sigma = dataset[index]
        denoised = model(noisy[None].to(device), sigma[None].to(device))[0].cpu()
        rows.append(
            {
                "image": dataset.name(index),
                "sigma": round(sigma.item(), 4),
                "psnr_noisy": psnr(noisy, clean).item(),
                "psnr_denoised": psnr(denoised, clean).item(),
                "ssim_noisy": ssim(noisy, clean).item(),
                "ssim_denoised": ssim(denoised, clean).item(),
            }
        )
        if plot_prefix and len(shown) < max_plots * ROWS_PER_GRID:
            shown.append((noisy, denoised, clean, dataset.name(index)))
    for n, start in enumerate(range(0, len(shown), ROWS_PER_GRID), start=1):
        group = list(zip(*shown[start : start + ROWS_PER_GRID], strict=False))
        plot_predictions(*group[:3], Path(image_dir) / f"{plot_prefix}_prediction_{n}.png", names=group[3])
    return rows


def summarize(rows: list[dict]) -> dict:
    """Mean of every metric over the rows."""
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key.startswith(("psnr", "ssim"))}


def markdown_table(rows: list[dict]) -> str:
    """Per-image rows and their mean, as a markdown table."""
    lines = [
        "| image | sigma | PSNR noisy | PSNR denoised | SSIM noisy | SSIM denoised |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in [*rows, {"image": "**mean**", "sigma": "", **summarize(rows)}]:
        lines.append(
            f"| {r['image']} | {r['sigma']} | {r['psnr_noisy']:.2f} | {r['psnr_denoised']:.2f} "
            f"| {r['ssim_noisy']:.3f} | {r['ssim_denoised']:.3f} |"
        )
    return "\n".join(lines)


def run_config(checkpoint: dict) -> TrainConfig:
    """The TrainConfig a checkpoint was trained with (fields it lacks keep today's defaults;
    fields this version no longer has are ignored), so evaluation degrades images as training did."""
    return TrainConfig.from_dict(checkpoint.get("train_config") or {})


def evaluate_run(run_dir: str | Path, device: str = "", image_dir: str | Path = C.IMAGE_DIR) -> list[dict]:
    """Evaluate a run folder's best checkpoint on its own split.

    Writes val and test prediction grids to image_dir and the test rows (and their mean) to
    run_dir/test_metrics.json; returns the test rows.
    """
    run_dir = Path(run_dir)
    device = pick_device(device)
    model, checkpoint = load_model(run_dir / "best.pth", device)
    config = run_config(checkpoint)
    split = load_split(run_dir / "split.json")
    if not split["test"]:  # a pack: its photos come from the training set, whose split holds the test photos
        split_file = C.PRETRAIN_DIR / "split.json"
        if not split_file.exists():
            build = "python -m utils.build_train_data"
            raise FileNotFoundError(f"{split_file}: the test photos of {run_dir}'s pack are in it; build it: {build}")
        split = load_split(split_file)
    datasets = split_datasets(
        split,
        eval_crop_size=config.eval_crop_size,
        seed=config.seed,
        task=config.make_task(),  # the run's own task and noise settings: a blind run is scored blind
    )
    evaluate(model, datasets["val"], device, "val", image_dir)
    rows = evaluate(model, datasets["test"], device, "test", image_dir)
    write_json_atomic(run_dir / "test_metrics.json", {"mean": summarize(rows), "images": rows})
    return rows


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--run", type=Path, default=C.RUNS_DIR / "latest", help="a folder written by model.train")
    parser.add_argument("--device", default="", help="cpu, cuda or mps; empty: the fastest available")
    parser.add_argument("--image-dir", type=Path, default=C.IMAGE_DIR, help="where the prediction grids go")
    args = parser.parse_args()
    try:
        rows = evaluate_run(args.run, args.device, args.image_dir)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(markdown_table(rows))
    mean = summarize(rows)
    print(
        f"\ntest mean PSNR: noisy {mean['psnr_noisy']:.2f} dB -> denoised {mean['psnr_denoised']:.2f} dB "
        f"({mean['psnr_denoised'] - mean['psnr_noisy']:+.2f} dB); plots in {args.image_dir}"
    )


if __name__ == "__main__":
    main()
