"""Super-resolution and colorization fine-tunes against their baselines, as a markdown table.

    python -m benchmarks.eval_tasks                      # every fine-tuned run that exists
    python -m benchmarks.eval_tasks --runs sr-x2 sr-x2-continued

Runs come from `python -m model.recipes --recipe sr-x2 | sr-x4 | colorize`
(their best.pth). Images: the embedded demo test split and the standard offline photos of
benchmarks/eval_quality.py. Super-resolution is scored as SR papers do (PSNR on the BT.601 Y
channel with `scale` border pixels shaved) and on RGB, against bicubic upscaling of the same
low-resolution image; colorization against its gray input on RGB (its luma is the input's, so
PSNR-Y says nothing there and is left out). Example grids go to image/.
"""

from __future__ import annotations

import datetime
import random

import numpy as np
import torch

import constants as C
from benchmarks.eval_quality import demo_test_photos, machine, standard_photos
from model.checkpoint import load_model
from model.config_flags import make_parser
from model.denoise import denoise_array
from model.metrics import psnr, psnr_y, ssim
from model.plots import plot_grid
from model.recipes import RECIPES
from model.train_config import TrainConfig

TASK_RUNS = [name for name, config in RECIPES.items() if config.task != "denoise"]


def score(output: torch.Tensor, clean: torch.Tensor, shave: int) -> np.ndarray:
    return np.array([psnr_y(output, clean, shave).item(), psnr(output, clean).item(), ssim(output, clean).item()])


def evaluate_run(name: str, sets: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """Mean (PSNR-Y, PSNR, SSIM) of the baseline input and of the model, per image set."""
    config: TrainConfig = RECIPES[name]
    task = config.make_task()
    model, _ = load_model(f"{config.out_dir}/best.pth", "cpu")
    sr = config.task == "sr"
    shave = config.scale if sr else 0
    rows = []
    for set_name, photos in sets.items():
        baseline, ours, examples = [], [], []
        for clean_array in photos.values():
            height, width = (side - side % config.scale for side in clean_array.shape[:2])  # whole LR pixels
            clean = torch.from_numpy(np.ascontiguousarray(clean_array[:height, :width])).permute(2, 0, 1)
            degraded, sigma = task.degrade(clean, random.Random(0), torch.Generator().manual_seed(0))
            output = denoise_array(degraded.permute(1, 2, 0).numpy(), model, sigma)
            output = torch.from_numpy(output).permute(2, 0, 1).clamp(0, 1)
            baseline.append(score(degraded, clean, shave))
            ours.append(score(output, clean, shave))
            examples.append((degraded, output, clean))
        rows.append(
            {
                "run": name,
                "set": set_name,
                "sr": sr,
                "baseline": np.mean(baseline, 0),
                "ours": np.mean(ours, 0),
            }
        )
        input_name = "bicubic" if sr else "gray input"
        plot_grid(
            examples[:3],
            [(input_name, name, "original")] * len(examples[:3]),
            C.IMAGE_DIR / f"{name}_{set_name}_examples.png",
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| run | images | baseline PSNR-Y / PSNR / SSIM | fine-tuned PSNR-Y / PSNR / SSIM | gain |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        b, o = row["baseline"], row["ours"]
        metric, name = (0, "Y") if row["sr"] else (1, "RGB")  # SR is scored on luma; colorization on colour
        cells = [(f"{x[0]:.2f}" if row["sr"] else "-") + f" / {x[1]:.2f} / {x[2]:.3f}" for x in (b, o)]
        lines.append(
            f"| {row['run']} | {row['set']} | {cells[0]} | {cells[1]} | {o[metric] - b[metric]:+.2f} dB ({name}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=TASK_RUNS,
        default=None,
        help="fine-tuned runs to score (default: all trained)",
    )
    args = parser.parse_args()
    names = args.runs or [n for n in TASK_RUNS if (C.ROOT_DIR / RECIPES[n].out_dir / "best.pth").exists()]
    if not names:
        raise SystemExit("error: no fine-tuned run found; train one with python -m model.recipes --recipe sr-x2")
    sets = {"demo-test": demo_test_photos(), "standard": standard_photos()}
    rows = [row for name in names for row in evaluate_run(name, sets)]
    print(f"\nBaseline: bicubic (SR) or the gray input (colorization); {datetime.date.today()}, {machine()}\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
