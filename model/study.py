"""Controlled experiments: arms that differ from a baseline by one named change, same budget.

    python -m model.study                          # every arm, two at a time, then the table
    python -m model.study --arms baseline c-noise-weighted --minutes 12
    python -m model.study --table                  # only the table of the arms that finished

Each arm is a `model.train` run (its settings are the baseline's plus the arm's change) of
`--minutes` training minutes on one CPU thread, started in its own process so that `--jobs`
arms share the cores without sharing a thread; an arm that was cut off resumes from its
`last.pth`, one that finished is not run again. All arms validate on the same photos with the
same noise, and the study scores each arm's final weights (the cosine schedule has annealed
them) on lossless PNG centre crops of the training set's validation photos at five noise
levels, against CBM3D given the true sigma, computed once and cached in `STUDY/cbm3d.json`.

The table (`STUDY/table.md`, also printed) gives per arm: PSNR minus CBM3D at 5, 10, 15, 25 and
50/255, the change against the arm it is compared with, the steps taken and crops per second;
`STUDY/margins.png` draws the margins to CBM3D.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import constants as C
from model.checkpoint import load_model
from model.config_flags import flat_values, make_parser
from model.dataset import list_images, seeded_noisy_copy
from model.files import atomic_write, write_json_atomic
from model.metrics import psnr
from model.photo_crops import centre_crop
from model.plots import plot_margins
from model.train_config import PRESETS, TrainConfig
from model.unet import BLIND_DENOISER, DRUNET_LIKE, UNet

SIGMAS = {"5": 5 / 255, "10": 10 / 255, "15": 15 / 255, "25": 25 / 255, "50": 50 / 255}  # x/255
VAL_SIDE = 256
STUDY_DIR = C.RUNS_DIR / "study"
PACK_DIR = C.DATA_DIR / "pack"

# the baseline: the recipe of the shipped weights' last run (the gpu preset: MSE, bf16, 128-px
# crops drawn per pixel, EMA), on the JPEG pack, from the shipped weights, at batch 16 and a rate
# measured to move them
BASELINE = {k: v for k, v in PRESETS["gpu"][1].items() if k not in ("data_dir", "out_dir", "minutes", "val_seconds")}
BASELINE |= {"lr": 1e-4, "batch_size": 16, "crop_size": 128, "amp": "bf16", "compile": "no"}
SCRATCH_LR = 1e-3
# from random weights (no --init): the shipped network's architecture, or the DRUNet-like one
SCRATCH = {"init": "", "lr": SCRATCH_LR}

# name -> (the arm it is measured against, the suspect it tests, its change to the baseline)
ARMS: dict[str, tuple[str, str, dict]] = {
    "baseline": ("", "the reference: today's recipe", {}),
    "baseline-lr3e-5": ("baseline", "the rate: a lower one disturbs the weights less", {"lr": 3e-5}),
    "a-per-photo": ("baseline", "26 wallpapers give 73% of the crops", {"sampling": "photo"}),
    "b-lossless": ("baseline", "the pack's JPEG targets", {"pack": "lossless"}),
    "c-noise-weighted": ("baseline", "MSE lets heavy noise rule every step", {"loss": "mse-per-variance"}),
    "d-fp32": ("baseline", "bf16 autocast costs light-noise accuracy", {"amp": "none"}),
    "e-dead-leaves": ("baseline", "too few distinct photos", {"synthetic_fraction": 0.25}),
    "baseline-seed1": ("baseline", "the noise floor: the same recipe on other crops and noise", {"seed": 1}),
    "h-long-warmup": (
        "baseline",
        "a fresh Adam's first, sign-like steps knock converged weights off (warm-up 3% -> 25%)",
        {"warmup_fraction": 0.25},
    ),
    "g-per-photo-lr3e-5": (
        "a-per-photo",
        "the winners together: crops per photo at the lower rate",
        {"sampling": "photo", "lr": 3e-5},
    ),
    "i-refine-blocks": (
        "g-per-photo-lr3e-5",
        "too little capacity at full resolution (4 convs of 32 channels): 2 refine blocks grown on, at 10x the rate",
        {"sampling": "photo", "lr": 3e-5, "add_refine_blocks": 2, "refine_lr_factor": 10.0},
    ),
    "f-scratch-unet": ("", "from scratch: today's architecture", {**SCRATCH, "model": BLIND_DENOISER}),
    "f-scratch-drunet": (
        "f-scratch-unet",
        "the architecture (biases, max-pooling, plain blocks)",
        {**SCRATCH, "model": DRUNET_LIKE},
    ),
}


# ---------------------------------------------------------------- the data every arm shares


def prepare(study: Path, pack: Path = PACK_DIR, pretrain: Path = C.PRETRAIN_DIR) -> dict[str, Path]:
    """Write (once) the lossless validation crops and the lossless twin of the pack's training
    photos; return the folders: pack, val, lossless (a pack with train/ only)."""
    manifest = json.loads((pack / "pack.json").read_text())
    val_dir, lossless = study / "data" / "val", study / "data" / "lossless"
    for entry in manifest["files"]:
        part = entry["file"].split("/")[0]
        name = entry["source"].replace("/", "__")
        target = (val_dir if part == "val" else lossless / "train") / name
        if target.exists():
            continue
        image = Image.open(pretrain / entry["source"]).convert("RGB")
        with atomic_write(target) as file:
            (centre_crop(image, VAL_SIDE) if part == "val" else image).save(file, format="PNG")
    write_json_atomic(lossless / "pack.json", {"source": str(pack), "lossless": True})
    return {"pack": pack, "val": val_dir, "lossless": lossless}


def validation_photos(val_dir: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p).convert("RGB"), np.float32) / 255 for p in list_images(val_dir)}


def score(output: np.ndarray | torch.Tensor, clean: np.ndarray) -> float:
    output = torch.as_tensor(np.asarray(output, np.float32)).clamp(0, 1).permute(2, 0, 1)
    return float(psnr(output, torch.from_numpy(clean).permute(2, 0, 1)))


def cbm3d_scores(val_dir: Path, cache: Path) -> dict[str, float]:
    """Mean CBM3D PSNR per sigma on the validation crops (true sigma), computed once per photo."""
    import bm3d

    done = json.loads(cache.read_text()) if cache.exists() else {}
    for name, clean in validation_photos(val_dir).items():
        for key, sigma in SIGMAS.items():
            if f"{name}@{key}" not in done:
                done[f"{name}@{key}"] = score(bm3d.bm3d_rgb(seeded_noisy_copy(clean, sigma, name), sigma), clean)
                write_json_atomic(cache, done)
    return {key: float(np.mean([v for k, v in done.items() if k.endswith(f"@{key}")])) for key in SIGMAS}


@torch.no_grad()
def model_scores(model: UNet, val_dir: Path) -> dict[str, float]:
    """Mean PSNR per sigma of a model given the true sigma, in fp32."""
    model.eval()
    scores: dict[str, list[float]] = {key: [] for key in SIGMAS}
    for name, clean in validation_photos(val_dir).items():
        for key, sigma in SIGMAS.items():
            noisy = torch.from_numpy(seeded_noisy_copy(clean, sigma, name)).permute(2, 0, 1)[None]
            scores[key].append(score(model(noisy, sigma)[0].permute(1, 2, 0), clean))
    return {key: float(np.mean(values)) for key, values in scores.items()}


# ---------------------------------------------------------------- arms


def arm_config(
    name: str, study: Path, folders: dict[str, Path], minutes: float, overrides: dict | None = None
) -> TrainConfig:
    """The baseline's settings with the arm's change (then `overrides`); validation on the lossless crops."""
    settings = {**BASELINE, **ARMS[name][2], **(overrides or {})}
    settings["data_dir"] = str(folders[settings.pop("pack", "pack")])
    return TrainConfig(
        **settings,
        out_dir=str(study / name),
        image_dir=str(study / name),
        val_dir=str(folders["val"]),
        minutes=minutes,
        val_seconds=60 * minutes,  # once at the end: a validation costs as much as ~30 steps
        device="cpu",
        threads=1,
    )


def run_arm(name: str, config: TrainConfig) -> int:
    """Train the arm in its own process (resuming if it was cut off); its output goes to OUT/log.txt."""
    out = Path(config.out_dir)
    if (out / "result.json").exists():
        return 0
    flags = []
    for key, value in flat_values(config).items():
        flag = "--" + key.replace("_", "-")
        flags += ([flag] if value else [f"--no-{flag[2:]}"]) if isinstance(value, bool) else [flag, str(value)]
    if (out / "last.pth").exists():
        flags.append("--resume")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.txt", "a") as log:
        command = [sys.executable, "-m", "model.train", *flags]
        return subprocess.run(command, stdout=log, stderr=log, check=False).returncode


def score_arm(name: str, out: Path, val_dir: Path) -> dict:
    """Scores and throughput of a finished arm, written to OUT/result.json."""
    history = json.loads((out / "history.json").read_text())
    torch.set_num_threads(1)
    result = {
        "psnr": model_scores(load_model(out / "last.pth")[0], val_dir),  # weights at the end of the schedule
        "steps": history["steps"],
        "crops_per_s": history["crops_per_s"],
        "train_minutes": round(history["train_seconds"] / 60, 1),
    }
    write_json_atomic(out / "result.json", result)
    return result


def start_scores(study: Path, val_dir: Path, init: Path = C.CHECKPOINT_PATH) -> dict[str, float]:
    """PSNR of the warm start itself (the shipped weights), cached in STUDY/start.json."""
    cache = study / "start.json"
    if not cache.exists():
        model, _ = load_model(init, "cpu")
        write_json_atomic(cache, model_scores(model, val_dir))
    return json.loads(cache.read_text())


# ---------------------------------------------------------------- the table


def table(results: dict[str, dict], cbm3d: dict[str, float], start: dict[str, float]) -> str:
    """Markdown: per arm, PSNR minus CBM3D per sigma, then the change against its reference arm."""
    keys = list(SIGMAS)
    head = " | ".join(f"{k}/255" for k in keys)
    lines = [
        f"| arm | suspect tested | vs CBM3D: {head} | vs its reference: {head} | steps | crops/s |",
        "| --- | --- | " + " | ".join("---" for _ in range(2 * len(keys))) + " | --- | --- |",
        "| CBM3D | (PSNR, dB) | " + " | ".join(f"{cbm3d[k]:.2f}" for k in keys) + " |" + " |" * len(keys) + " | |",
        "| shipped weights | (the start) | "
        + " | ".join(f"{start[k] - cbm3d[k]:+.2f}" for k in keys)
        + " |"
        + " |" * len(keys)
        + " | |",
    ]
    for name, result in results.items():
        reference, suspect, _ = ARMS[name]
        margins = " | ".join(f"{result['psnr'][k] - cbm3d[k]:+.2f}" for k in keys)
        if reference in results:
            changes = " | ".join(f"{result['psnr'][k] - results[reference]['psnr'][k]:+.2f}" for k in keys)
        else:
            changes = " | ".join("" for _ in keys)
        lines.append(
            f"| {name} | {suspect} | {margins} | {changes} | {result['steps']} | {result['crops_per_s']:.1f} |"
        )
    return "\n".join(lines)


def run_study(
    arms: list[str],
    minutes: float,
    jobs: int,
    study: Path = STUDY_DIR,
    train: bool = True,
    pack: Path = PACK_DIR,
    pretrain: Path = C.PRETRAIN_DIR,
    overrides: dict | None = None,
) -> str:
    """Train (or resume) the arms, `jobs` at a time, score them, and write STUDY/table.md;
    `overrides` (settings of TrainConfig) apply to every arm, e.g. a smaller crop in a test."""
    folders = prepare(study, pack, pretrain)
    cbm3d = cbm3d_scores(folders["val"], study / "cbm3d.json")
    start = start_scores(study, folders["val"])

    def one(name: str) -> dict | None:
        out = study / name
        if train and run_arm(name, arm_config(name, study, folders, minutes, overrides)) != 0:
            print(f"{name}: training failed, see {out / 'log.txt'}")
            return None
        if (out / "result.json").exists():
            return json.loads((out / "result.json").read_text())
        if not (out / "history.json").exists():
            return None
        result = score_arm(name, out, folders["val"])
        print(f"{name}: " + ", ".join(f"{k}/255 {v - cbm3d[k]:+.2f}" for k, v in result["psnr"].items()))
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = dict(zip(arms, pool.map(one, arms), strict=True))
    finished = {k: v for k, v in results.items() if v}
    text = table(finished, cbm3d, start)
    with atomic_write(study / "table.md", "w") as file:
        file.write(text + "\n")
    margin = lambda scores: {k: scores[k] - cbm3d[k] for k in SIGMAS}  # noqa: E731
    warm = {"shipped weights": margin(start)}
    from_scratch = {name for name in finished if ARMS[name][2].get("init") == ""}
    warm |= {name: margin(r["psnr"]) for name, r in finished.items() if name not in from_scratch}
    panels = {"from the shipped weights": warm}
    scratch = {name: margin(r["psnr"]) for name, r in finished.items() if name in from_scratch}
    plot_margins(panels | ({"from scratch": scratch} if scratch else {}), study / "margins.png")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="which arms (default: all)")
    parser.add_argument("--minutes", type=float, default=12.0, help="training minutes per arm")
    parser.add_argument("--jobs", type=int, default=2, help="arms trained at once, one CPU thread each")
    parser.add_argument("--out", type=Path, default=STUDY_DIR, help="the study's folder")
    parser.add_argument("--table", action="store_true", help="only score finished arms and print the table")
    parser.add_argument("--pack", type=Path, default=PACK_DIR, help="the pack (utils/make_pack.py)")
    parser.add_argument("--pretrain", type=Path, default=C.PRETRAIN_DIR, help="its lossless source photos")
    args = parser.parse_args(argv)
    if not (args.pack / "pack.json").exists():
        build = "python -m utils.build_train_data && python -m utils.make_pack"
        raise SystemExit(f"error: {args.pack / 'pack.json'} not found; build it with {build}")
    print(run_study(args.arms, args.minutes, args.jobs, args.out, not args.table, args.pack, args.pretrain))


if __name__ == "__main__":
    main()
