"""The one writer of model/storage/trained_unet.pth: ship a run's best weights, keeping the whole training chain.

    python -m model.ship_weights runs/gpu                  # its best.pth is shipped
    python -m model.ship_weights runs/gpu runs/gpu-2       # two runs, the second from the first's weights
    python -m model.ship_weights --average runs/a runs/b   # two runs from the same weights: their mean
    python -m model.ship_weights runs/cpu --fraction 0.75  # 3/4 of the way from the start to its best
    python -m model.ship_weights runs/cpu --final          # its final weights (last.pth), not its best

Each folder is one run (best.pth, history.json) of `model/train.py`, of any preset, in the order
they ran, each warm-started from the previous one and the first from the shipped checkpoint
(or `--base`). With `--average` the runs are instead siblings, all started from the same
weights, and the mean of their final weights (last.pth) is shipped: runs from one start stay
close enough for their mean to be a network too, often keeping what each learned (the
nineteenth sitting: one arm gained at light noise, the other held the heaviest; their mean
kept the heavy rows and most of the light-noise gain). With `--fraction F` the weights shipped
lie F of the way from `--base` to those the runs would ship: `model/interpolate.py` picks F on
validation, where a sitting's light-noise gain comes sooner than its heavy-noise loss. With
`--final` the last run's final weights are shipped instead of its best: for a run whose
validation photos do not measure what it trained for (JPEG'd crops, `--jpeg-fraction`, scored on
lossless photos), `benchmarks/eval_quality.py` judges them instead.

The result, model/storage/trained_unet.pth, holds the weights in half precision (15.5 MB;
`benchmarks/eval_quality.py` moved by at most 0.01 dB against float32), the model config,
the earlier chain's train_config and history, and one `gpu_runs` entry per run (since the
first GPU run; device, seconds, steps, crops, pixels, throughput, best validation, settings
with paths inside the repository made relative), so the model card's totals come from the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import constants as C
from model.checkpoint import CheckpointError, load_checkpoint, repo_relative, save_checkpoint
from model.config_flags import make_parser

RUN_FACTS = (
    "device",
    "train_photos",
    "train_megapixels",
    "batch_size",
    "crop_size",
    "mode",
    "processes",
    "precision",
    "train_seconds",
    "steps",
    "crops",
    "pixels",
    "crops_per_s",
    "pixels_per_s",
    "tflops",
    "fraction_of_bf16_peak",
    "best",
    "config",
)


def relative_settings(run: dict) -> dict:
    """`run` with its settings' paths inside the repository made relative (the defaults are absolute)."""
    if "config" not in run:
        return run
    return {**run, "config": {k: repo_relative(v) for k, v in run["config"].items()}}


def run_facts(run_dir: Path) -> dict:
    """The RUN_FACTS of one run, from its history.json."""
    history = run_dir / "history.json"
    if not history.exists():
        raise FileNotFoundError(f"{history}: no such file; is {run_dir} a run folder of model.train?")
    return {k: v for k, v in json.loads(history.read_text()).items() if k in RUN_FACTS}


def mean_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of networks' weights, in float32; integer buffers (counters) from the first."""
    return {
        key: torch.stack([s[key].float() for s in states]).mean(0) if value.is_floating_point() else value
        for key, value in states[0].items()
    }


def toward(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """start + fraction * (end - start) for every floating-point tensor, in float32; the others
    (counters) from `end`. Fraction 0 is the start, 1 the end. A run that grew a light-noise copy
    of the network (`--add-light-network`) began the copy as the start's own layers."""
    grown = end.keys() - start.keys()
    start = start | {
        key: start[key.removeprefix("light_network.")] for key in grown if key.startswith("light_network.")
    }
    if start.keys() != end.keys():
        raise ValueError("the two networks have different layers; only a run and its own start interpolate")
    return {
        key: start[key].float().lerp(value.float(), fraction) if value.is_floating_point() else value
        for key, value in end.items()
    }


def siblings_mean(run_dirs: list[Path], runs: list[dict]) -> dict:
    """The checkpoint whose weights are the mean of the runs' last.pth, once they are known to share a start."""
    finals = [load_checkpoint(Path(d) / "last.pth") for d in run_dirs]
    for run_dir, run, final in zip(run_dirs[1:], runs[1:], finals[1:], strict=True):
        if run["config"].get("init") != runs[0]["config"].get("init"):
            raise ValueError(f"{run_dir}: started from other weights than {run_dirs[0]}; only siblings average")
        if final["model_config"] != finals[0]["model_config"]:
            raise ValueError(f"{run_dir}: another network than {run_dirs[0]}'s; only siblings average")
    return {"model": mean_weights([f["model"] for f in finals]), "model_config": finals[0]["model_config"]}


def ship(
    run_dirs: list[Path],
    base: Path = C.CHECKPOINT_PATH,
    target: Path = C.CHECKPOINT_PATH,
    average: bool = False,
    fraction: float = 1.0,
    final: bool = False,
) -> dict:
    """Write `target` from the last run's best.pth (its last.pth if `final`, or the mean of sibling
    runs' last.pth), moved `fraction` of the way from `base`, on top of `base`'s record; return
    what was written."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction:g}: must be in (0, 1]")
    if final and average:
        raise ValueError("--average already ships the runs' final weights; drop --final")
    previous = load_checkpoint(base)
    runs = [run_facts(Path(d)) for d in run_dirs]
    if average:
        chosen = siblings_mean(run_dirs, runs)
        runs = [{**run, "shipped": f"mean of {len(runs)} sibling runs' last weights"} for run in runs]
    else:
        chosen = load_checkpoint(Path(run_dirs[-1]) / ("last.pth" if final else "best.pth"))
        if final:
            runs[-1] = {**runs[-1], "shipped": "its final weights"}
    if fraction < 1:
        chosen["model"] = toward(previous["model"], chosen["model"], fraction)
        to = "the last run's final weights" if final else "the last run's best weights"
        runs = [
            {**run, "shipped": f"{fraction:g} of the way from the start to {run.get('shipped', to)}"} for run in runs
        ]
    state = {k: v for k, v in previous.items() if k not in ("model", "format_version")}
    state["gpu_runs"] = [relative_settings(run) for run in previous.get("gpu_runs", []) + runs]
    earlier = previous.get("training_minutes", 0.0)
    state["training_minutes"] = round(earlier + sum(r["train_seconds"] for r in runs) / 60, 1)
    state["model"] = {k: v.to(torch.float16) for k, v in chosen["model"].items()}
    state["model_config"] = chosen["model_config"]
    save_checkpoint(target, **state)
    return state


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (best.pth, history.json), in order")
    parser.add_argument(
        "--average", action="store_true", help="the runs share a start: ship the mean of their final weights"
    )
    parser.add_argument(
        "--base", type=Path, default=C.CHECKPOINT_PATH, help="the checkpoint the first run started from"
    )
    parser.add_argument("--target", type=Path, default=C.CHECKPOINT_PATH, help="where to write (default: shipped)")
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="how far from --base toward the runs' weights (model.interpolate)"
    )
    parser.add_argument("--final", action="store_true", help="the last run's final weights (last.pth), not its best")
    args = parser.parse_args(argv)
    try:
        state = ship(args.runs, args.base, args.target, args.average, args.fraction, args.final)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    runs = state["gpu_runs"]
    on_gpu = sum(run["device"] not in ("cpu", "mps") for run in runs)
    print(
        f"wrote {args.target}: {state['training_minutes']} training minutes in all; "
        f"{len(runs)} recorded runs, {on_gpu} of them on a GPU"
    )


if __name__ == "__main__":
    main()
