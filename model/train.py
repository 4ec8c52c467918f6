"""Train the U-Net denoiser: read it top to bottom, or run it.

    python -m model.train                                  # AFHQ if downloaded, else the demo photos
    python -m model.train --base-channels 32 --epochs 8    # any TrainConfig field is a flag
    python -m model.train --out-dir runs/demo --resume     # continue where a run stopped

A run folder holds `best.pth` (best validation PSNR), `last.pth` (for --resume),
`history.json` and `split.json`; the loss plot goes to image/loss_plot.png. Training never
writes the shipped checkpoint model/storage/trained_unet.pth.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

import constants as C
from model import distributed
from model.checkpoint import load_checkpoint, load_model, save_checkpoint
from model.dataset import split_datasets
from model.device import pick_device
from model.files import write_json_atomic
from model.losses import PIXEL_LOSSES, TrainingLoss
from model.metrics import psnr
from model.plots import plot_history
from model.precision import AMP_CHOICES, AMP_DTYPES, resolve_amp
from model.split import default_split, load_split
from model.tasks import Colorize, Denoise, SuperResolution, Task
from model.unet import UNet


class TrainingDiverged(RuntimeError):
    """The loss kept being NaN or infinite."""


@dataclass
class TrainConfig:
    data_dir: str = ""  # empty: AFHQ if downloaded, else data/demo
    split_file: str = ""  # a manifest from utils/split_data.py; empty: the default split of data_dir
    out_dir: str = str(C.RUNS_DIR / "latest")
    image_dir: str = str(C.IMAGE_DIR)
    # model (the defaults are the original project's U-Net)
    base_channels: int = 64
    depth: int = 4
    noise_level_input: bool = False
    residual: bool = False
    batch_norm: bool = True
    final_activation: str = "none"  # or sigmoid (not with residual)
    # task: denoise, sr (super-resolution) or colorize; fine-tuning starts from --init weights
    task: str = "denoise"
    scale: int = 2  # sr: downscaling factor
    sr_noise: float = 0.0  # sr: noise sigma added at low resolution
    init: str = ""  # a checkpoint to start from (its architecture is used)
    freeze_epochs: int = 0  # > 0: encoder frozen this many epochs, then unfrozen a level per epoch
    encoder_lr_factor: float = 1.0  # encoder learning rate = lr * this (e.g. 0.1 when fine-tuning)
    # noise
    sigma: float = C.NOISE_SIGMA
    sigma_max: float = -1.0  # > sigma: train on sigma in [sigma, sigma_max]
    sigma_power: float = 1.0  # sigma = sigma + (sigma_max - sigma) * u**power; > 1 favours low levels
    clip_noisy: bool = False
    # optimisation
    epochs: int = C.EPOCHS
    batch_size: int = C.BATCH_SIZE
    eval_batch_size: int = C.EVAL_BATCH_SIZE
    lr: float = C.LEARNING_RATE
    loss: str = "mse"  # mse, l1 or charbonnier
    perceptual_weight: float = 0.0  # > 0: add a VGG16 feature loss (needs the ImageNet weights locally)
    crop_size: int = C.CROP_SIZE
    eval_crop_size: int = C.EVAL_CROP_SIZE
    repeats: int = 1  # random crops per image per epoch
    grad_clip: float = C.GRAD_CLIP
    max_bad_steps: int = C.MAX_BAD_STEPS
    max_minutes: float = 0.0  # > 0: stop after the epoch in which the run's training time passes this
    # run
    seed: int = C.SEED
    device: str = ""  # empty: cuda, else mps, else cpu
    amp: str = "none"  # none, bf16, fp16 (autocast; fp16 adds a gradient scaler) or auto (see resolve_amp)
    channels_last: bool = False
    compile: bool = False  # torch.compile the model (slow start, faster steps on some machines)
    threads: int = 0  # > 0: torch.set_num_threads
    num_workers: int = 0
    cache_images: bool = False  # keep decoded training images in RAM
    resume: bool = False

    def model_config(self) -> dict:
        return {
            "base_channels": self.base_channels,
            "depth": self.depth,
            "noise_level_input": self.noise_level_input,
            "residual": self.residual,
            "batch_norm": self.batch_norm,
            "final_activation": self.final_activation,
        }

    def make_task(self) -> Task:
        if self.task == "denoise":
            high = max(self.sigma, self.sigma_max)  # sigma_max <= sigma: a fixed noise level
            return Denoise((self.sigma, high), self.sigma_power, self.clip_noisy)
        if self.task == "sr":
            return SuperResolution(self.scale, self.sr_noise)
        if self.task == "colorize":
            return Colorize()
        raise ValueError(f"task must be denoise, sr or colorize, got {self.task!r}")


def encoder_levels(model: UNet) -> list[nn.Module]:
    """The encoder, shallowest level first: in_conv, enc_1, ..., enc_depth."""
    return [model.in_conv] + [getattr(model, f"enc_{level}") for level in range(1, model.depth + 1)]


def set_trainable(model: UNet, epoch: int, freeze_epochs: int) -> int:
    """Freeze the encoder for `freeze_epochs` epochs, then unfreeze one level per epoch, deepest
    first (gradual unfreezing: the generic low-level features change last). Returns the number
    of frozen levels."""
    levels = encoder_levels(model)
    unfrozen = max(0, epoch - freeze_epochs) if freeze_epochs > 0 else len(levels)
    for index, level in enumerate(reversed(levels)):
        level.requires_grad_(index < unfrozen)
    return max(0, len(levels) - unfrozen)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict:
    """Random generator states as plain types and tensors, so weights_only loading accepts them."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }


def restore_rng_states(states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"].cpu())


@torch.no_grad()
def validate(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> dict:
    """Per-image MSE and PSNR (denoised and noisy input), averaged over every process's share."""
    model.eval()
    totals = [0.0, 0.0, 0.0, 0.0]  # mse, psnr, noisy psnr, images
    for noisy, clean, sigma in loader:
        noisy, clean = noisy.to(device), clean.to(device)
        denoised = model(noisy, sigma.to(device))
        totals[0] += F.mse_loss(denoised, clean, reduction="none").flatten(1).mean(1).sum().item()
        totals[1] += psnr(denoised, clean).sum().item()
        totals[2] += psnr(noisy, clean).sum().item()
        totals[3] += len(noisy)
    mse, psnr_sum, noisy_sum, count = distributed.all_reduce(totals)
    return {"val_loss": mse / count, "val_psnr": psnr_sum / count, "val_psnr_noisy": noisy_sum / count}


def train(config: TrainConfig | None = None, **overrides) -> dict:
    """Train a UNet as `config` says (fields may also be given as keyword arguments).

    Under torchrun every process runs this; the global batch is split between them and only
    rank 0 logs and writes files. Returns {"history": [...per-epoch dicts...], "best": path,
    "last": path, "out_dir": path}.
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides)
    out_dir = Path(config.out_dir)
    last_path, best_path = out_dir / "last.pth", out_dir / "best.pth"
    if last_path.exists() and not config.resume:
        raise FileExistsError(f"{out_dir}: already holds a run; pass resume=True (--resume) or another out_dir")
    if config.loss not in PIXEL_LOSSES or config.amp not in AMP_CHOICES:
        raise ValueError(f"loss must be one of {list(PIXEL_LOSSES)} and amp one of {list(AMP_CHOICES)}")
    task = config.make_task()
    rank, world_size, _ = distributed.world()
    if world_size > 1 and config.freeze_epochs > 0:
        raise ValueError("freezing layers is not supported with several processes (DDP); use one process")
    main_process = rank == 0
    if config.batch_size % world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {world_size} processes")
    device = distributed.init(pick_device(config.device))
    amp = resolve_amp(config.amp, device)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    log = print if main_process else lambda *args, **kwargs: None

    # data: the split is saved with the run, so evaluation later uses exactly the same images
    manifest = (
        load_split(config.split_file) if config.split_file else default_split(config.data_dir or None, config.seed)
    )
    if main_process:
        write_json_atomic(out_dir / "split.json", manifest)
    datasets = split_datasets(
        manifest,
        crop_size=config.crop_size,
        eval_crop_size=config.eval_crop_size,
        repeats=config.repeats,
        seed=config.seed,
        cache=config.cache_images,
        task=task,  # the noise level, its sampling and clipping live in the task
    )
    loader_options = {
        "num_workers": config.num_workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": config.num_workers > 0,
    }
    sampler = distributed.EpochSampler(datasets["train"], config.seed)
    train_loader = DataLoader(
        datasets["train"], config.batch_size // world_size, sampler=sampler, drop_last=True, **loader_options
    )
    val_share = Subset(datasets["val"], range(rank, len(datasets["val"]), world_size))
    val_loader = DataLoader(val_share, config.eval_batch_size, **loader_options)
    if len(train_loader) == 0:
        raise ValueError(f"{len(datasets['train'])} training images is fewer than one batch of {config.batch_size}")

    # model and optimiser
    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    if config.init:
        model, _ = load_model(config.init, device)  # the architecture comes with the weights
        log(f"starting from {config.init}")
    else:
        model = UNet(**config.model_config())
    model = model.to(device, memory_format=memory_format)
    encoder = {id(p) for level in encoder_levels(model) for p in level.parameters()}
    optimizer = torch.optim.Adam(
        [
            {"params": [p for p in model.parameters() if id(p) not in encoder], "lr": config.lr},
            {"params": [p for p in model.parameters() if id(p) in encoder], "lr": config.lr * config.encoder_lr_factor},
        ]
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr / 100)
    # fp16 needs loss scaling so small gradients do not flush to zero; bf16 has fp32's range
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    loss_function = TrainingLoss(config.loss, config.perceptual_weight).to(device)
    start_epoch, step, best_psnr, history = 1, 0, -math.inf, []
    if config.resume and last_path.exists():
        state = load_checkpoint(last_path, device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start_epoch, step = state["epoch"] + 1, state["step"]
        best_psnr, history = state["best_val_psnr"], state["history"]
        restore_rng_states(state["rng"])
        log(f"resuming {out_dir} after epoch {state['epoch']}")
    # gradients are averaged over processes in backward(); one process trains the model as is
    net = DistributedDataParallel(model) if world_size > 1 else model
    net = torch.compile(net) if config.compile else net
    log(
        f"training on {device} x {world_size}: {len(datasets['train'])} train / {len(datasets['val'])} val "
        f"images, {sum(p.numel() for p in model.parameters()):,} parameters, precision {amp}"
    )

    for epoch in range(start_epoch, config.epochs + 1):
        if config.max_minutes > 0 and sum(h["seconds"] for h in history) >= 60 * config.max_minutes:
            log(f"stopping: the time budget of {config.max_minutes} minutes is spent")
            break
        frozen = set_trainable(model, epoch, config.freeze_epochs)
        net.train()
        sampler.set_epoch(epoch)
        started, losses, skipped, bad_in_a_row = time.time(), [], 0, 0
        progress = tqdm(train_loader, desc=f"epoch {epoch}/{config.epochs}", leave=False, disable=not main_process)
        for noisy, clean, sigma in progress:
            noisy = noisy.to(device, memory_format=memory_format, non_blocking=True)
            clean = clean.to(device, memory_format=memory_format, non_blocking=True)
            sigma = sigma.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=AMP_DTYPES[amp], enabled=amp != "none"):
                loss = loss_function(net(noisy, sigma).float(), clean)
            optimizer.zero_grad(set_to_none=True)
            # every process must take the same decision, or DDP's gradient averaging would hang
            (finite,) = distributed.all_reduce([float(torch.isfinite(loss))], "min")
            if not finite:
                # one bad batch should not wreck the weights; many in a row means the run diverged
                skipped, bad_in_a_row = skipped + 1, bad_in_a_row + 1
                if bad_in_a_row >= config.max_bad_steps:
                    raise TrainingDiverged(
                        f"training stopped: {bad_in_a_row} non-finite losses in a row at epoch {epoch}; "
                        f"lower the learning rate (now {config.lr}) or check the data"
                    )
                continue
            bad_in_a_row = 0
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            losses.append(loss.item())
            progress.set_postfix(loss=f"{loss.item():.4f}")
        scheduler.step()

        loss_sum, loss_count = distributed.all_reduce([sum(losses), len(losses)])
        (seconds,) = distributed.all_reduce([time.time() - started], "max")
        record = {
            "epoch": epoch,
            "step": step,
            "train_loss": loss_sum / loss_count if loss_count else float("nan"),
            **validate(model, val_loader, device),  # unwrapped: processes may hold different counts
            "lr": optimizer.param_groups[0]["lr"],
            "frozen_levels": frozen,
            "skipped_steps": skipped,
            "seconds": round(seconds, 3),
        }
        history.append(record)
        log(
            f"epoch {epoch}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}, "
            f"val PSNR {record['val_psnr']:.2f} dB (noisy {record['val_psnr_noisy']:.2f} dB), {record['seconds']} s"
        )

        is_best = record["val_psnr"] > best_psnr
        best_psnr = max(best_psnr, record["val_psnr"])
        if main_process:
            state = {
                "model": model.state_dict(),
                "model_config": model.config,
                "train_config": asdict(config),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "step": step,
                "best_val_psnr": best_psnr,
                "history": history,
                "rng": rng_states(),
            }
            if is_best:
                save_checkpoint(best_path, **state)
            save_checkpoint(last_path, **state)
            write_json_atomic(out_dir / "history.json", {"history": history})
            plot_history(history, Path(config.image_dir) / "loss_plot.png")

    return {"history": history, "best": best_path, "last": last_path, "out_dir": out_dir}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Every TrainConfig field becomes a --flag with the field's default."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            parser.add_argument(flag, type={"str": str, "int": int, "float": float}[field.type], default=field.default)
    return TrainConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        result = train(config)
    except (FileExistsError, FileNotFoundError, ValueError, TrainingDiverged) as error:
        raise SystemExit(f"error: {error}") from None
    finally:
        distributed.close()
    if not distributed.is_main():
        return
    best = max(result["history"], key=lambda h: h["val_psnr"])
    print(f"best validation PSNR {best['val_psnr']:.2f} dB at epoch {best['epoch']}: {result['best']}")


if __name__ == "__main__":
    main()
