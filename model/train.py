"""Train the U-Net: one loop for a laptop, a long CPU sitting, a GPU and torchrun. Read it top to bottom.

    python -m model.train --preset demo                 # the embedded photos, minutes on a laptop CPU
    python -m model.train --preset cpu-sitting          # the shipped denoiser, further, on every CPU core
    python -m model.train --preset gpu --minutes 60     # the shipped denoiser on a GPU (its last run's recipe)
    python -m model.train --base-channels 32 --epochs 8 # any TrainConfig field is a flag (after the preset's)
    python -m model.train --out-dir runs/demo --resume  # go on where a run stopped (a crash, a kill, a sitting)
    torchrun --nproc_per_node=4 -m model.train ...      # data parallel: the same batches as one process

The photos are decoded once and held as uint8 in memory, or on the GPU (`model/photo_crops.py`);
crops, flips, noise levels and noise are drawn there with one seeded generator, so nothing waits
on Python and the same seed gives the same run. The schedule is epochs (`--epochs`; an epoch is
`repeats` crops per photo) or the clock (`--minutes`): a linear warm-up, then a cosine to the
end, so a run of any length finishes its schedule. `--stop-minutes` ends a sitting early; the
same command with `--resume` goes on from `last.pth`, bit for bit on the CPU.

Validation is in fp32, on centre crops of the validation photos with noise seeded once (a blind
denoiser at 5, 15, 25 and 50/255 of its range, each level also reported alone, since their mean
hides a light-noise change), after every epoch or every `--val-seconds`; with `--ema-decay`
the moving average of the weights is scored too. The run folder gets
`best.pth` (the best weights so far, raw or averaged, with their config), `last.pth` (all of
the state), `history.json` (every validation and the run's facts: device, steps, throughput)
and `split.json` (which photos were used); `model.evaluate --run` reads it, and
`model.ship_weights` turns it into the shipped checkpoint. Training never writes
model/storage/trained_unet.pth itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from model import distributed
from model.checkpoint import load_checkpoint, load_model, save_checkpoint
from model.config_flags import make_parser, parse_flags
from model.dataset import list_images
from model.device import pick_device
from model.files import write_json_atomic
from model.fine_tune import (
    add_light_blocks,
    add_light_network,
    add_light_refine,
    add_refine_blocks,
    reset_head,
    set_trainable,
    wants_new_head,
)
from model.photo_crops import read_photos
from model.plots import plot_history
from model.split import default_split, load_split
from model.train_config import PRESETS, TrainConfig, check_config
from model.trainer import (
    Trainer,
    draw_predictions,
    flops_per_crop,
    learning_rate,
    save_best,
    synchronize,
    validation_set,
)
from model.unet import UNet

# dense bf16 tensor-core peak by GPU name, from the vendors' data sheets (SXM parts)
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


class TrainingDiverged(RuntimeError):
    """The loss kept being NaN or infinite."""


# ---------------------------------------------------------------- data: photos held as uint8


def photo_manifest(config: TrainConfig) -> dict:
    """Which photos train, validate and test: `split_file`, data_dir's own split.json, a pack's
    train/ and val/ folders (no test photos), or the project's split of a photo folder."""
    if config.split_file:
        manifest = load_split(config.split_file)
        return {"root": str(Path(config.split_file).parent), **manifest}
    root = Path(config.data_dir) if config.data_dir else None
    if root is not None and (root / "split.json").exists():  # a set carries its split: wherever it is copied
        return {**load_split(root / "split.json"), "root": str(root)}
    if root is not None and (root / "pack.json").exists():
        parts = [part for part in ("train", "val") if (root / part).is_dir()]
        files = {part: [p.relative_to(root).as_posix() for p in list_images(root / part)] for part in parts}
        return {"root": str(root), "val": [], **files, "test": []}
    return default_split(root, config.seed)


def load_validation_photos(manifest: dict, config: TrainConfig) -> tuple[list[torch.Tensor], list[str]]:
    """(val photos, their names), decoded once as (3, H, W) uint8."""
    root = Path(manifest["root"])
    val_paths = list_images(Path(config.val_dir)) if config.val_dir else [root / name for name in manifest["val"]]
    if not val_paths:
        raise ValueError(f"{config.val_dir or root}: no validation photos; name a folder of them with --val-dir")
    val, kept = read_photos(val_paths)
    return val, [path.name for path in kept]


def load_photos(manifest: dict, config: TrainConfig) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
    """(train photos, val photos, val names), decoded once as (3, H, W) uint8."""
    train, _ = read_photos([Path(manifest["root"]) / name for name in manifest["train"]])
    return train, *load_validation_photos(manifest, config)


def prediction_epochs(spec: str, epochs: int) -> set[int]:
    """The epochs named by `--prediction-epochs`: numbers and/or first, middle, last."""
    named = {"first": 1, "middle": (epochs + 1) // 2, "last": epochs}
    return {named[part] if part in named else int(part) for part in spec.split(",") if part.strip()}


# ---------------------------------------------------------------- the loop


def by_sigma(record: dict) -> str:
    """A validation's PSNR per noise level for the log line ("; by sigma: 5/255 41.203, ..."), if it has them."""
    levels = record.get("val_psnr_by_sigma", {})
    return "; by sigma: " + ", ".join(f"{k} {v:.3f}" for k, v in levels.items()) if levels else ""


def train(config: TrainConfig | None = None, **overrides) -> dict:
    """Train a UNet as `config` says (fields may also be given as keyword arguments).

    Under torchrun every process runs this; only rank 0 logs and writes files. Returns the
    run's facts: {"history": [...one dict per validation...], "best": path, "last": path,
    "out_dir": path, "steps", "train_seconds", "crops_per_s", ...} (also in history.json).
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides)
    started_at = time.time()
    rank, world_size, _ = distributed.world()
    check_config(config, world_size)
    main_process = rank == 0
    log = tqdm.write if main_process else lambda *_: None
    device = distributed.init(pick_device(config.device))
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out_dir = Path(config.out_dir)
    last_path, best_path = out_dir / "last.pth", out_dir / "best.pth"
    saved = load_checkpoint(last_path) if config.resume and last_path.exists() else None

    # model: the warm start's architecture and weights, or the config's network from its seed (before the
    # photos, so a network that cannot take these settings fails at once)
    model = load_model(config.init, device)[0] if config.init else UNet(config.model)
    if config.add_refine_blocks:
        model = add_refine_blocks(model, config.add_refine_blocks)
    if config.add_light_refine:
        model = add_light_refine(model, config.model.light_sigma)
    if config.add_light_blocks:
        model = add_light_blocks(model, config.add_light_blocks)
    if config.add_light_network:
        model = add_light_network(model)
    if wants_new_head(config, model) and saved is None:
        reset_head(model)
    frozen = set_trainable(model, 1, config.freeze_epochs, config.trained_blocks())  # before the FLOP count

    # data: decoded once, held on the device as uint8
    manifest = photo_manifest(config)
    train_photos, val_photos, val_names = load_photos(manifest, config)
    if main_process:
        write_json_atomic(out_dir / "split.json", manifest)
    val_items = validation_set(val_photos, config, device)
    trainer = Trainer(model.train(), config, device, train_photos)
    flops = flops_per_crop(model, config.crop_size, device)
    if saved:
        trainer.restore(saved)
    elif config.batch_size == 0:
        rates = trainer.measure_batch_size()
        trainer.batch_size = min(b for b, rate in rates.items() if rate >= 0.9 * max(rates.values()))
        log("crops/s by batch: " + ", ".join(f"{b}: {r:.0f}" for b, r in rates.items()))
    steps_per_epoch = len(train_photos) * config.repeats // trainer.batch_size
    if steps_per_epoch == 0 and not config.minutes:
        raise ValueError(f"{len(train_photos)} training photos x {config.repeats} repeats is fewer than one batch")
    steps_per_epoch = max(1, steps_per_epoch)  # on the clock an epoch only counts crops
    mode = trainer.compile()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    facts = {
        "device": name,
        "processes": world_size,
        "train_photos": trainer.sampler.photos,
        "train_megapixels": round(trainer.sampler.pixels / 1e6, 1),
        "batch_size": trainer.batch_size,
        "crop_size": config.crop_size,
        "mode": mode,
        "precision": trainer.amp,
    }
    log(
        f"training on {name} x {world_size}: {trainer.sampler.photos} train photos "
        f"({facts['train_megapixels']} MP), {len(val_photos)} val photos x {len(val_items) // len(val_photos)}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, batch {trainer.batch_size} of "
        f"{config.crop_size}x{config.crop_size}, {mode}, precision {trainer.amp}"
    )

    def weights_of(kind: str) -> list[torch.Tensor]:
        return trainer.ema if kind == "ema" else list(model.parameters())

    def run_facts(step: int, seconds: float) -> dict:
        crops = step * trainer.batch_size
        throughput = {"train_seconds": round(seconds, 1), "steps": step, "crops": crops}
        throughput |= {"pixels": crops * config.crop_size**2, "crops_per_s": round(crops / max(seconds, 1e-9), 1)}
        throughput["tflops"] = round(flops * crops / max(seconds, 1e-9) / 1e12, 3)
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
        if peak:
            throughput["fraction_of_bf16_peak"] = round(throughput["tflops"] / peak, 3)
        return {**facts, **throughput, "flops_per_crop": flops}

    def save(record: dict, step: int, seconds: float) -> None:
        """best.pth when a validation beats every earlier one, then last.pth and history.json."""
        nonlocal best
        for kind in ("raw", "ema") if trainer.ema is not None else ("raw",):
            value = record["val_psnr_ema" if kind == "ema" else "val_psnr"]
            if value > best["psnr"]:
                label = "init" if step == 0 else kind
                best = {"psnr": value, "weights": label, "step": step, "epoch": record["epoch"]}
                if main_process:
                    best_facts = {"train_config": asdict(config), "best": best, "best_val_psnr": value}
                    save_best(best_path, model, weights_of(kind), {**best_facts, "epoch": record["epoch"]})
        if not main_process:
            return
        progress = {"step": step, "seconds": seconds, "best": best, "history": history, "epoch": record["epoch"]}
        save_checkpoint(
            last_path, **trainer.state(), **progress, train_config=asdict(config), model_config=model.config
        )
        summary = {**run_facts(step, seconds), "best": best, "config": asdict(config), "history": history}
        write_json_atomic(out_dir / "history.json", summary)
        plot_history(history, Path(config.image_dir) / "loss_plot.png")

    def validation(step: int, seconds: float, losses: list[float], skipped: int) -> dict:
        epoch = step // steps_per_epoch
        record = {"epoch": epoch, "step": step, "seconds": round(seconds, 1), "lr": current_lr}
        if losses or skipped:  # each process's loss is its share's: the world's mean is the whole batch's
            loss_sum, loss_count = distributed.all_reduce([sum(losses), len(losses)])
            record |= {"train_loss": loss_sum / max(1, loss_count), "skipped_steps": skipped}
        record |= {**trainer.validate(val_items), "frozen_levels": frozen}
        if trainer.ema is not None:
            ema = trainer.validate(val_items, trainer.ema)
            record["val_psnr_ema"] = ema["val_psnr"]
            if "val_psnr_by_sigma" in ema:
                record["val_psnr_ema_by_sigma"] = ema["val_psnr_by_sigma"]
        return record

    # the schedule: where a saved run stopped, or from the start (validating a warm start first)
    current_lr = 0.0
    if saved:
        step, seconds, best, history = saved["step"], saved["seconds"], saved["best"], saved["history"]
        log(f"resuming {out_dir} at step {step} ({seconds:.0f} s); best {best['psnr']:.3f} dB")
    else:
        step, seconds, best, history = 0, 0.0, {"psnr": -math.inf}, []
        if config.init:
            history.append(validation(0, 0.0, [], 0))
            save(history[-1], 0, 0.0)
            log(f"start: val PSNR {history[-1]['val_psnr']:.3f} dB{by_sigma(history[-1])}")
    budget = 60 * config.minutes if config.minutes else None
    total_steps = config.epochs * steps_per_epoch
    stop = 60 * config.stop_minutes if config.stop_minutes > 0 else math.inf
    drawn = prediction_epochs(config.prediction_epochs, config.epochs) if not budget else set()
    next_val = (seconds // config.val_seconds + 1) * config.val_seconds if budget else math.inf
    losses, skipped, bad_in_a_row = [], 0, 0
    total, initial = (round(budget), int(seconds)) if budget else (total_steps, step)
    progress_bar = tqdm(total=total, initial=initial, unit="s" if budget else "step", disable=not main_process)
    clock = time.perf_counter() - seconds
    while True:
        elapsed = time.perf_counter() - clock
        if budget and world_size > 1:  # every process must take the same decision below
            (elapsed,) = distributed.all_reduce([elapsed], "max")
        finished = elapsed >= budget if budget else step >= total_steps
        trained = step > (history[-1]["step"] if history else 0) or not history
        if (finished or elapsed >= stop) and not trained:
            break  # a resumed run that had already reached its end or its stop
        epoch_end = not budget and step > 0 and step % steps_per_epoch == 0
        if trained and (finished or elapsed >= stop or elapsed >= next_val or epoch_end):
            synchronize(device)
            seconds = time.perf_counter() - clock
            (seconds,) = distributed.all_reduce([seconds], "max")
            record = validation(step, seconds, losses, skipped)
            history.append(record)
            losses, skipped = [], 0
            ema = f", EMA {record['val_psnr_ema']:.3f} dB" if "val_psnr_ema" in record else ""
            where = f"{record['seconds']:7.1f} s step {step}" if budget else f"epoch {record['epoch']}"
            log(
                f"{where}: train loss {record.get('train_loss', math.nan):.4g}, val PSNR {record['val_psnr']:.3f} dB"
                f"{ema} (input {record['val_psnr_noisy']:.2f} dB){by_sigma(record)}"
            )
            save(record, step, seconds)
            if main_process and (record["epoch"] in drawn or (budget and finished)):
                when = f"step_{step}" if budget else f"epoch_{record['epoch']}"
                image = Path(config.image_dir) / f"val_prediction_{when}.png"
                draw_predictions(model, val_items, val_names, image)
            next_val += config.val_seconds if budget else 0
            clock = time.perf_counter() - seconds  # validation time is not training time
            if finished or elapsed >= stop:
                break
            frozen = set_trainable(model, record["epoch"] + 1, config.freeze_epochs, config.trained_blocks())
        current_lr = learning_rate(elapsed / budget if budget else step / total_steps, config)
        loss = trainer.step(current_lr)
        if loss is None:
            skipped, bad_in_a_row = skipped + 1, bad_in_a_row + 1
            if bad_in_a_row >= config.max_bad_steps:
                raise TrainingDiverged(
                    f"training stopped: {bad_in_a_row} non-finite losses in a row at step {step}; "
                    f"lower the learning rate (now {config.lr}) or check the data"
                )
            continue
        bad_in_a_row = 0
        losses.append(loss)
        step += 1
        progress_bar.update(max(0, int(elapsed) - progress_bar.n) if budget else 1)
        progress_bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
    progress_bar.close()

    result = {**run_facts(step, seconds), "history": history, "wall_seconds": round(time.time() - started_at, 1)}
    log(
        f"{name}: {step} steps, {result['crops']} crops in {seconds:.0f} s: {result['crops_per_s']:.0f} crops/s, "
        f"{result['tflops']} TFLOP/s; best: {best.get('weights', 'raw')} weights, val PSNR {best['psnr']:.3f} dB "
        f"-> {best_path}"
    )
    if not finished:
        log(f"stopped at {seconds / 60:.1f} training minutes: the same command with --resume goes on")
    return {**result, "best": best_path, "best_validation": best, "last": last_path, "out_dir": out_dir}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Every TrainConfig field (the network's included) is a --flag with its help, default and
    choices; `--preset NAME` first sets that preset's defaults."""
    presets = "\n".join(f"  {name:12} {about}" for name, (about, _) in PRESETS.items())
    parser = make_parser(f"{__doc__}\npresets (--preset):\n{presets}")
    parser.add_argument("--preset", choices=PRESETS, default="", help="start from this preset's settings")
    chosen = argparse.ArgumentParser(add_help=False)
    chosen.add_argument("--preset", choices=PRESETS, default="")
    preset = chosen.parse_known_args(argv)[0].preset
    return parse_flags(TrainConfig, argv, None, TrainConfig.preset(preset) if preset else None, parser)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        result = train(config)
        # leave together: a process that tears down its connections while another still writes
        # its last checkpoint can make that one abort (gloo)
        distributed.barrier()
    except (FileExistsError, FileNotFoundError, ValueError, TrainingDiverged) as error:
        raise SystemExit(f"error: {error}") from None
    finally:
        distributed.close()
    if distributed.is_main():
        print(f"best validation PSNR {result['best_validation']['psnr']:.2f} dB: {result['best']}")


if __name__ == "__main__":
    main()
