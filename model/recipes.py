"""Recorded CPU recipes of `model/train.py`: the first three sittings of the shipped checkpoint's
chain (model/storage/TRAINING_LOG.md; the runs after them are in the log, and the recipe of the
latest is `--preset gpu`), the original project's recipe as a baseline, and the fine-tunes that
start from the shipped weights. The recorded runs predate the one trainer (2026-12-01): their
settings are here, but a run today draws other crops and follows the cosine step by step.

    python -m model.recipes                    # ours: trains (or resumes) runs/pretrained
    python -m model.recipes --recipe original  # the original recipe, same data and budget
    python -m model.recipes --recipe ours-continued  # a second sitting of ours from its best weights
    python -m model.recipes --recipe ours-continued-2  # a third sitting from the second's best
    python -m model.recipes --recipe sr-x2     # fine-tune the shipped weights: x2 super-resolution
    python -m model.recipes --recipe sr-x4     # ... x4 super-resolution
    python -m model.recipes --recipe colorize  # ... colorization

Every recipe trains on the offline set of `python -m utils.build_train_data` (data/pretrain)
for a budget of training minutes, on one CPU thread by default, so `ours` and `original` can
run side by side on a 2-core machine with the same compute. Training resumes from last.pth,
so a budget can be spread over several sittings; it counts training time only. A run's best
weights become the shipped ones only through `python -m model.ship_weights RUN_DIR`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import constants as C
from model.config_flags import make_parser
from model.train import TrainConfig, train
from model.unet import UNetConfig

SPLIT_FILE = C.PRETRAIN_DIR / "split.json"
RECIPES = {
    # sigma-map residual U-Net without batch norm, trained blind over sigma in [0, 0.5]
    "ours": TrainConfig(
        out_dir=str(C.RUNS_DIR / "pretrained"),
        model=UNetConfig(base_channels=32, depth=4, noise_level_input=True, residual=True, batch_norm=False),
        sigma=0.0,
        sigma_max=0.5,
        sigma_power=2.0,  # P(sigma < 25/255) = 44% instead of 20%: low levels are not starved
        loss="l1",
        lr=5e-4,
        epochs=40,
        batch_size=16,
        crop_size=96,
        repeats=24,
        amp="auto",  # bf16 where the hardware has it (it halves the step time on AVX512-BF16 CPUs)
        channels_last="yes",
    ),
    # the original project's settings: its U-Net, MSE, Adam 1e-3, fixed sigma 0.5, clipped noisy input
    "original": TrainConfig(
        out_dir=str(C.RUNS_DIR / "original_recipe"),
        sigma=C.NOISE_SIGMA,
        clip_noisy=True,
        epochs=1000,  # the budget stops it long before; the cosine schedule stays near lr
        repeats=4,
    ),
}


def continued(previous: str, run_name: str, **settings) -> TrainConfig:
    """A warm restart (SGDR-style): the recipe `previous`, started from its run's best weights in
    a new run folder with a fresh schedule; `settings` override any field."""
    config = RECIPES[previous]
    init = str(Path(config.out_dir) / "best.pth")
    return dataclasses.replace(config, out_dir=str(C.RUNS_DIR / run_name), init=init, **settings)


# a second sitting of ours at a lower peak
RECIPES["ours-continued"] = continued("ours", "pretrained-continued", lr=2e-4, epochs=12)
# a third sitting, a lower peak again; without channels_last, which benchmarks/train_speed.py measured
# 10% slower for this config on an AVX2-only CPU (2.77 vs 2.51 s/step)
RECIPES["ours-continued-2"] = continued(
    "ours-continued", "pretrained-continued-2", lr=1e-4, epochs=18, channels_last="no"
)


def fine_tune(name: str, **settings) -> TrainConfig:
    """From the shipped denoiser: decoder at 1e-4; the encoder frozen for 2 epochs, then unfrozen
    a level per epoch at 1e-5; a smaller batch; Charbonnier loss. `settings` override any field.
    The init's output layer is zeroed (`reset_head`, since 2026-11-26; the recorded runs predate
    it and started from CPU-trained weights that still learnt without it)."""
    config = TrainConfig(
        out_dir=str(C.RUNS_DIR / name),
        init=str(C.CHECKPOINT_PATH),
        lr=1e-4,
        encoder_lr_factor=0.1,
        freeze_epochs=2,
        epochs=8,
        batch_size=8,
        crop_size=96,
        repeats=6,
        loss="charbonnier",
        amp="auto",  # bf16 where the hardware has it (it halves the step time on AVX512-BF16 CPUs)
        channels_last="yes",
    )
    return dataclasses.replace(config, **settings)


# 8 epochs (504 steps) gained only +0.43 dB RGB over bicubic on the val crops, so x2 trains 3x longer
RECIPES["sr-x2"] = fine_tune("sr-x2", epochs=24, task="sr", scale=2)
# its 24 epochs gained +0.97 dB (Y) over bicubic on the standard photos; a second sitting from
# its best weights, everything unfrozen at one learning rate
RECIPES["sr-x2-continued"] = continued(
    "sr-x2", "sr-x2-continued", epochs=14, lr=5e-5, encoder_lr_factor=1.0, freeze_epochs=0
)
RECIPES["sr-x4"] = fine_tune("sr-x4", task="sr", scale=4)
RECIPES["colorize"] = fine_tune("colorize", task="colorize")
MINUTES = {
    "ours": 80.0,
    "ours-continued": 90.0,
    "ours-continued-2": 65.0,
    "original": 80.0,
    "sr-x2": 45.0,
    "sr-x2-continued": 30.0,
    "sr-x4": 20.0,
    "colorize": 20.0,
}


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--recipe", choices=RECIPES, default="ours", help="which recorded recipe to train")
    parser.add_argument("--minutes", type=float, default=None, help=f"training-time budget (default: {MINUTES})")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (one, so two recipes can share 2 cores)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    args = parser.parse_args()
    if not SPLIT_FILE.exists():
        raise SystemExit(f"error: {SPLIT_FILE} not found; build the training set with python -m utils.build_train_data")
    config = RECIPES[args.recipe]
    started = time.time()
    result = train(
        config,
        split_file=str(SPLIT_FILE),
        image_dir=config.out_dir,
        stop_minutes=args.minutes or MINUTES[args.recipe],
        threads=args.threads,
        device=args.device,
        resume=True,
    )
    best = max(result["history"], key=lambda h: h["val_psnr"])
    print(
        f"{args.recipe}: {result['steps']} steps, best val PSNR {best['val_psnr']:.2f} dB "
        f"(epoch {best['epoch']}), this sitting {(time.time() - started) / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
