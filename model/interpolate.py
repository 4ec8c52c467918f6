"""Weights part of the way from a sitting's start toward its end, the fraction picked on validation.

    python -m model.interpolate runs/cpu                       # fractions 0.25 ... 1 of runs/cpu
    python -m model.interpolate runs/a runs/b --fractions 0.6 0.8 --crop-size 256
    python -m model.ship_weights runs/cpu --fraction 0.75      # then ship the one it names

A sitting that fine-tunes toward light noise gains there and slips at the heaviest noise, which
its loss weighs least. Runs from one start stay close enough for the straight line between
start and end to be a family of networks (what `ship_weights --average` relies on), and along
it the light-noise gain comes sooner than the heavy-noise loss: part of the way keeps most of
the one and little of the other. This scores points on that line on the last run's validation
photos (centre crops, noise seeded once, the true sigma, fp32), at the light levels and at the
heaviest row of `benchmarks/eval_quality.py`, whose photos it never sees, and names the largest
fraction at which no level falls more than `--tolerance` dB below the start. The default asks
that none falls at all, stricter than the shipping rule's 0.02 dB: the validation crops lose
less at heavy noise than the standard photos do (the thirty-second sitting's R1 at 0.5: 0.009
against 0.020 dB). The runs are given in order, as to `ship_weights`; the start is `--base`,
the weights the first one started from.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

import constants as C
from model.checkpoint import CheckpointError, load_checkpoint, load_model
from model.config_flags import make_parser
from model.files import write_json_atomic
from model.metrics import psnr
from model.ship_weights import run_facts, toward
from model.tasks import Denoise
from model.train import load_validation_photos, photo_manifest
from model.train_config import TrainConfig
from model.trainer import validation_set
from model.unet import UNet

LEVELS = {"5/255": 5 / 255, "15/255": 15 / 255, "25/255": 25 / 255, "50/255": 50 / 255, "0.5": 0.5}
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


@torch.no_grad()
def level_scores(model: UNet, items: list[tuple]) -> dict[float, float]:
    """Mean PSNR per noise level over (noisy, clean, sigma) items, the output clipped to [0, 1]."""
    model.eval()
    scores: dict[float, list[float]] = {}
    for noisy, clean, sigma in items:
        scores.setdefault(float(sigma), []).append(psnr(model(noisy, sigma).clamp(0, 1), clean).item())
    return {sigma: sum(values) / len(values) for sigma, values in scores.items()}


def largest_within(rows: dict[float, dict[str, float]], tolerance: float) -> float:
    """The largest fraction whose every level is at most `tolerance` dB below fraction 0's (0: the start)."""
    start = rows[0.0]
    kept = [f for f, row in rows.items() if all(row[s] >= start[s] - tolerance for s in start)]
    return max(kept)


def score_fractions(
    run_dirs: list[Path], base: Path, fractions: list[float], levels: dict[str, float], crop_size: int = 0
) -> dict[float, dict[str, float]]:
    """PSNR per level name of each point start + f * (end - start), fraction 0 (the start) first."""
    config = TrainConfig.from_dict(run_facts(Path(run_dirs[-1]))["config"])
    model, end = load_model(Path(run_dirs[-1]) / "best.pth")
    start = load_checkpoint(base)
    if crop_size:
        config.eval_crop_size = crop_size
    photos, _ = load_validation_photos(photo_manifest(config), config)
    tasks = [Denoise((sigma, sigma)) for sigma in levels.values()]
    items = validation_set(photos, config, torch.device("cpu"), tasks)
    rows = {}
    for fraction in tqdm([0.0, *fractions], desc="fractions"):
        model.load_state_dict(toward(start["model"], end["model"], fraction))
        by_sigma = level_scores(model, items)  # keyed by the float32 sigma the items carry
        rows[fraction] = dict(zip(sorted(levels, key=levels.get), (by_sigma[s] for s in sorted(by_sigma)), strict=True))
    return rows


def table(rows: dict[float, dict[str, float]], levels: list[str], chosen: float) -> str:
    """Markdown: per fraction, the start's PSNR (first row) and then each point's change."""
    start = rows[0.0]
    lines = ["| fraction | " + " | ".join(levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for fraction, row in rows.items():
        cells = [f"{row[s]:.3f}" if fraction == 0 else f"{row[s] - start[s]:+.3f}" for s in levels]
        mark = " (chosen)" if fraction == chosen and fraction else ""
        lines.append(f"| {fraction:g}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (best.pth, history.json), in order")
    parser.add_argument("--base", type=Path, default=C.CHECKPOINT_PATH, help="the weights the first run started from")
    parser.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS), help="points to score")
    parser.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS), help="noise levels")
    parser.add_argument("--tolerance", type=float, default=0.0, help="how far (dB) any level may fall")
    parser.add_argument("--crop-size", type=int, default=0, help="validation crop side (default: the run's)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: PyTorch's choice)")
    args = parser.parse_args(argv)
    if any(not 0 < f <= 1 for f in args.fractions):
        parser.error("--fractions: each must be in (0, 1]")
    if args.threads:
        torch.set_num_threads(args.threads)
    levels = {name: LEVELS[name] for name in args.levels}
    try:
        rows = score_fractions(args.runs, args.base, sorted(set(args.fractions)), levels, args.crop_size)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    chosen = largest_within(rows, args.tolerance)
    print(table(rows, list(levels), chosen))
    result = {"base": str(args.base), "levels": levels, "psnr": {str(f): r for f, r in rows.items()}}
    write_json_atomic(Path(args.runs[-1]) / "interpolation.json", result | {"chosen": chosen})
    if chosen:
        print(f"largest fraction with no level down by more than {args.tolerance:g} dB: {chosen:g}; ship it with")
        base = f" --base {args.base}" if args.base != C.CHECKPOINT_PATH else ""
        print(f"    python -m model.ship_weights {' '.join(map(str, args.runs))}{base} --fraction {chosen:g}")
    else:
        print(f"every fraction falls more than {args.tolerance:g} dB at some level: nothing to ship")


if __name__ == "__main__":
    main()
