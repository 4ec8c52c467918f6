"""Train the U-Net denoiser: read it top to bottom, or run it.

    python -m model.train                                  # AFHQ if downloaded, else the demo photos
    python -m model.train --base-channels 32 --epochs 8    # any TrainConfig field is a flag
    python -m model.train --out-dir runs/demo --resume     # continue where a run stopped

A run folder holds `best.pth` (best validation PSNR), `last.pth` (for --resume),
`history.json` and `split.json`; the loss plot goes to image/loss_plot.png. Training never
writes the shipped checkpoint model/storage/trained_unet.pth.
"""

from __future__ import annotations

import dataclasses
import functools
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
from model.config_flags import group, option, parse_flags
from model.dataset import split_datasets
from model.device import pick_device
from model.files import write_json_atomic
from model.losses import PIXEL_LOSSES, TrainingLoss
from model.metrics import psnr
from model.plots import plot_history, plot_predictions
from model.precision import AMP_CHOICES, AMP_DTYPES, resolve_amp
from model.split import default_split, load_split
from model.tasks import Colorize, Denoise, SuperResolution, Task
from model.unet import UNet, UNetConfig

RESET_HEAD_CHOICES = ("auto", "yes", "no")


class TrainingDiverged(RuntimeError):
    """The loss kept being NaN or infinite."""


@dataclass
class TrainConfig:
    """One training run: every field is a `python -m model.train` flag, with this help.

    The defaults are the original project's network and settings where they are sound;
    `model/recipes.py` holds the recorded recipes of the shipped weights.
    """

    data_dir: str = option(
        "", "photo folder (AFHQ layout or folder per class); empty: AFHQ if downloaded, else data/demo"
    )
    split_file: str = option("", "a manifest from utils/split_data.py; empty: the default split of data_dir")
    out_dir: str = option(str(C.RUNS_DIR / "latest"), "run folder: best.pth, last.pth, history.json, split.json")
    image_dir: str = option(str(C.IMAGE_DIR), "where the loss plot and validation predictions go")
    model: UNetConfig = group(UNetConfig, "network (ignored with --init, which brings its own)")
    # task: what the network learns to undo; fine-tuning starts from --init weights
    task: str = option("denoise", "denoise, sr (super-resolution) or colorize", ("denoise", "sr", "colorize"))
    scale: int = option(2, "sr: downscaling factor")
    sr_noise: float = option(0.0, "sr: noise sigma added at low resolution")
    init: str = option("", "a checkpoint to start from (its architecture is used)")
    freeze_epochs: int = option(0, "> 0: encoder frozen this many epochs, then unfrozen a level per epoch")
    encoder_lr_factor: float = option(1.0, "encoder learning rate = lr * this (e.g. 0.1 when fine-tuning)")
    reset_head: str = option(
        "auto",
        "zero the output convolution of --init weights, so a residual U-Net starts from its input: "
        "auto (for sr and colorize), yes or no",
        RESET_HEAD_CHOICES,
    )
    # noise
    sigma: float = option(C.NOISE_SIGMA, "noise sigma on the [0, 1] scale (the lowest, with sigma_max)")
    sigma_max: float = option(-1.0, "> sigma: train on every sigma in [sigma, sigma_max] (a blind denoiser)")
    sigma_power: float = option(1.0, "sigma + (sigma_max - sigma) * u**power, u uniform; > 1 favours low levels")
    clip_noisy: bool = option(False, "clip noisy inputs to [0, 1] (the original did)")
    # optimisation
    epochs: int = option(10, "epochs (the cosine schedule spans them)")
    batch_size: int = option(16, "crops per step, over all processes")
    eval_batch_size: int = option(4, "validation images per batch")
    lr: float = option(1e-3, "peak learning rate (Adam), cosine down to lr/100")
    loss: str = option("mse", "pixel loss", tuple(PIXEL_LOSSES))
    perceptual_weight: float = option(0.0, "> 0: add a VGG16 feature loss (needs the ImageNet weights locally)")
    crop_size: int = option(128, "side of the random training crops (the original resized to 224)")
    eval_crop_size: int = option(256, "side of the validation centre crops")
    repeats: int = option(1, "random crops per image per epoch")
    grad_clip: float = option(1.0, "gradient norm clipping")
    max_bad_steps: int = option(10, "non-finite losses in a row before training stops")
    max_minutes: float = option(0.0, "> 0: stop after the epoch in which the run's training time passes this")
    prediction_epochs: str = option("first,middle,last", "epochs whose validation predictions are drawn")
    # run
    seed: int = option(C.SEED, "seed of the split, crops and noise")
    device: str = option("", "cuda, mps or cpu; empty: cuda, else mps, else cpu")
    amp: str = option("none", "autocast precision; fp16 adds a gradient scaler; auto: bf16 where native", AMP_CHOICES)
    channels_last: bool = option(False, "channels_last memory format (faster on some CPUs and GPUs)")
    compile: bool = option(False, "torch.compile the model (slow start, faster steps on some machines)")
    threads: int = option(0, "> 0: torch.set_num_threads")
    num_workers: int = option(0, "DataLoader worker processes")
    cache_images: bool = option(False, "keep decoded training images in RAM")
    resume: bool = option(False, "continue the run in out_dir from its last.pth")

    @classmethod
    def from_dict(cls, stored: dict) -> TrainConfig:
        """The config a checkpoint stored, nested or (before UNetConfig) flat; unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)} | NETWORK_FIELDS
        values = {key: value for key, value in stored.items() if key in known}
        if isinstance(values.get("model"), dict):
            values["model"] = UNetConfig(**values["model"])
        return cls(**values)

    def make_task(self) -> Task:
        if self.task == "denoise":
            high = max(self.sigma, self.sigma_max)  # sigma_max <= sigma: a fixed noise level
            return Denoise((self.sigma, high), self.sigma_power, self.clip_noisy)
        if self.task == "sr":
            return SuperResolution(self.scale, self.sr_noise)
        if self.task == "colorize":
            return Colorize()
        raise ValueError(f"task must be denoise, sr or colorize, got {self.task!r}")


NETWORK_FIELDS = {f.name for f in dataclasses.fields(UNetConfig)}


def accept_network_fields(init):
    """TrainConfig(base_channels=32, ...) and dataclasses.replace(config, depth=3) set the nested
    network config, so configs read as flat as before UNetConfig."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs) -> None:
        network = {key: kwargs.pop(key) for key in list(kwargs) if key in NETWORK_FIELDS}
        init(self, *args, **kwargs)
        self.model = dataclasses.replace(self.model, **network)

    return wrapper


TrainConfig.__init__ = accept_network_fields(TrainConfig.__init__)


def encoder_levels(model: UNet) -> list[nn.Module]:
    """The encoder, shallowest level first: in_conv, enc_1, ..., enc_depth."""
    return [model.in_conv] + [getattr(model, f"enc_{level}") for level in range(1, model.depth + 1)]


def wants_new_head(config: TrainConfig, model: UNet) -> bool:
    """Whether to zero the head of --init weights: asked for, or a residual network set a new task.

    A noise-level-aware denoiser returns an image without noise unchanged with its units off,
    so its gradients there are about 1,000 times smaller than at sigma 0.005 and a fine-tune
    for sharper or coloured output cannot leave the identity (measured: 180 steps of x2
    super-resolution ended within 0.001 dB of bicubic). A zero head keeps the identity as the
    starting point, while the trunk's live features (the tasks tell the network sigma 0.01,
    `model/tasks.py`) give the head a gradient from the first step.
    """
    if config.reset_head == "auto":
        return bool(config.init) and config.task != "denoise" and model.residual
    return bool(config.init) and config.reset_head == "yes"


def reset_head(model: UNet) -> None:
    """Zero the output convolution: a residual U-Net then returns its input unchanged."""
    nn.init.zeros_(model.out_conv.weight)
    if model.out_conv.bias is not None:  # DRUNet-like networks have none
        nn.init.zeros_(model.out_conv.bias)


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
    mse = psnr_sum = noisy_sum = count = 0.0
    for noisy, clean, sigma in loader:
        noisy, clean = noisy.to(device), clean.to(device)
        denoised = model(noisy, sigma.to(device))
        mse += F.mse_loss(denoised, clean, reduction="none").flatten(1).mean(1).sum().item()
        psnr_sum += psnr(denoised, clean).sum().item()
        noisy_sum += psnr(noisy, clean).sum().item()
        count += len(noisy)
    mse, psnr_sum, noisy_sum, count = distributed.all_reduce([mse, psnr_sum, noisy_sum, count])
    return {"val_loss": mse / count, "val_psnr": psnr_sum / count, "val_psnr_noisy": noisy_sum / count}


@dataclass
class Session:
    """Everything one training process holds while it runs; built by `start_session`."""

    config: TrainConfig
    device: torch.device
    amp: str
    world_size: int
    main_process: bool
    datasets: dict
    sampler: distributed.EpochSampler
    train_loader: DataLoader
    val_loader: DataLoader
    model: UNet
    net: nn.Module  # the model as trained: wrapped for DDP and/or compiled
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loss_function: TrainingLoss

    def log(self, message: str) -> None:
        if self.main_process:
            print(message)


def memory_format(config: TrainConfig) -> torch.memory_format:
    return torch.channels_last if config.channels_last else torch.preserve_format


def check_config(config: TrainConfig, world_size: int) -> None:
    """Refuse settings that cannot work, before any data is read."""
    if (Path(config.out_dir) / "last.pth").exists() and not config.resume:
        raise FileExistsError(f"{config.out_dir}: already holds a run; pass resume=True (--resume) or another out_dir")
    if config.loss not in PIXEL_LOSSES or config.amp not in AMP_CHOICES:
        raise ValueError(f"loss must be one of {list(PIXEL_LOSSES)} and amp one of {list(AMP_CHOICES)}")
    if config.reset_head not in RESET_HEAD_CHOICES:
        raise ValueError(f"reset_head must be one of {list(RESET_HEAD_CHOICES)}, got {config.reset_head!r}")
    if world_size > 1 and config.freeze_epochs > 0:
        raise ValueError("freezing layers is not supported with several processes (DDP); use one process")
    if config.batch_size % world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {world_size} processes")


def make_loaders(config: TrainConfig, rank: int, world_size: int, device: torch.device) -> tuple:
    """(datasets, sampler, train loader, val loader); the split is saved with the run, so evaluation
    later uses exactly the same images."""
    manifest = (
        load_split(config.split_file) if config.split_file else default_split(config.data_dir or None, config.seed)
    )
    if rank == 0:
        write_json_atomic(Path(config.out_dir) / "split.json", manifest)
    datasets = split_datasets(
        manifest,
        crop_size=config.crop_size,
        eval_crop_size=config.eval_crop_size,
        repeats=config.repeats,
        seed=config.seed,
        cache=config.cache_images,
        task=config.make_task(),  # the noise level, its sampling and clipping live in the task
    )
    options = {"num_workers": config.num_workers, "pin_memory": device.type == "cuda"}
    options["persistent_workers"] = config.num_workers > 0
    sampler = distributed.EpochSampler(datasets["train"], config.seed)
    train_loader = DataLoader(
        datasets["train"], config.batch_size // world_size, sampler=sampler, drop_last=True, **options
    )
    val_share = Subset(datasets["val"], range(rank, len(datasets["val"]), world_size))
    if len(train_loader) == 0:
        raise ValueError(f"{len(datasets['train'])} training images is fewer than one batch of {config.batch_size}")
    return datasets, sampler, train_loader, DataLoader(val_share, config.eval_batch_size, **options)


def start_session(config: TrainConfig) -> Session:
    """Device, precision, seeds, data, model and optimizer of one training process."""
    rank, world_size, _ = distributed.world()
    check_config(config, world_size)
    device = distributed.init(pick_device(config.device))
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    datasets, sampler, train_loader, val_loader = make_loaders(config, rank, world_size, device)
    model = load_model(config.init, device)[0] if config.init else UNet(config.model)  # init brings its network
    if wants_new_head(config, model):
        reset_head(model)
    model = model.to(device, memory_format=memory_format(config))
    encoder = {id(p) for level in encoder_levels(model) for p in level.parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in encoder], "lr": config.lr},
        {"params": [p for p in model.parameters() if id(p) in encoder], "lr": config.lr * config.encoder_lr_factor},
    ]
    optimizer = torch.optim.Adam(groups)
    amp = resolve_amp(config.amp, device)
    # gradients are averaged over processes in backward(); one process trains the model as is
    net = DistributedDataParallel(model) if world_size > 1 else model
    return Session(
        config=config,
        device=device,
        amp=amp,
        world_size=world_size,
        main_process=rank == 0,
        datasets=datasets,
        sampler=sampler,
        train_loader=train_loader,
        val_loader=val_loader,
        model=model,
        net=torch.compile(net) if config.compile else net,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr / 100),
        # fp16 needs loss scaling so small gradients do not flush to zero; bf16 has fp32's range
        scaler=torch.amp.GradScaler(device.type, enabled=amp == "fp16"),
        loss_function=TrainingLoss(config.loss, config.perceptual_weight).to(device),
    )


def train_epoch(run: Session, epoch: int, step: int) -> dict:
    """One pass over the training crops; a non-finite loss skips its batch, many in a row stop the run.
    Returns the epoch's mean loss, skipped batches and seconds, and the step count after it."""
    run.net.train()
    run.sampler.set_epoch(epoch)
    started, losses, skipped, bad_in_a_row = time.time(), [], 0, 0
    layout = memory_format(run.config)
    progress = tqdm(
        run.train_loader, desc=f"epoch {epoch}/{run.config.epochs}", leave=False, disable=not run.main_process
    )
    for noisy, clean, sigma in progress:
        noisy = noisy.to(run.device, memory_format=layout, non_blocking=True)
        clean = clean.to(run.device, memory_format=layout, non_blocking=True)
        with torch.autocast(run.device.type, dtype=AMP_DTYPES[run.amp], enabled=run.amp != "none"):
            loss = run.loss_function(run.net(noisy, sigma.to(run.device, non_blocking=True)).float(), clean)
        run.optimizer.zero_grad(set_to_none=True)
        # every process must take the same decision, or DDP's gradient averaging would hang
        (finite,) = distributed.all_reduce([float(torch.isfinite(loss))], "min")
        if not finite:
            skipped, bad_in_a_row = skipped + 1, bad_in_a_row + 1
            if bad_in_a_row >= run.config.max_bad_steps:
                raise TrainingDiverged(
                    f"training stopped: {bad_in_a_row} non-finite losses in a row at epoch {epoch}; "
                    f"lower the learning rate (now {run.config.lr}) or check the data"
                )
            continue
        bad_in_a_row = 0
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        step += 1
        losses.append(loss.item())
        progress.set_postfix(loss=f"{loss.item():.4f}")
    run.scheduler.step()
    loss_sum, loss_count = distributed.all_reduce([sum(losses), len(losses)])
    (seconds,) = distributed.all_reduce([time.time() - started], "max")
    mean_loss = loss_sum / loss_count if loss_count else float("nan")
    return {"step": step, "train_loss": mean_loss, "skipped_steps": skipped, "seconds": round(seconds, 3)}


def checkpoint_state(run: Session, epoch: int, step: int, best_psnr: float, history: list[dict]) -> dict:
    """What last.pth and best.pth hold: enough to resume exactly, and to rebuild the model alone."""
    return {
        "model": run.model.state_dict(),
        "model_config": run.model.config,
        "train_config": asdict(run.config),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "epoch": epoch,
        "step": step,
        "best_val_psnr": best_psnr,
        "history": history,
        "rng": rng_states(),
    }


def resume(run: Session, last_path: Path) -> tuple[int, int, float, list[dict]]:
    """Load last.pth into the session; returns (next epoch, step, best val PSNR, history)."""
    state = load_checkpoint(last_path, run.device)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if "scaler" in state:
        run.scaler.load_state_dict(state["scaler"])
    restore_rng_states(state["rng"])
    run.log(f"resuming {last_path.parent} after epoch {state['epoch']}")
    return state["epoch"] + 1, state["step"], state["best_val_psnr"], state["history"]


def prediction_epochs(spec: str, epochs: int) -> set[int]:
    """The epochs named by `--prediction-epochs`: numbers and/or first, middle, last."""
    named = {"first": 1, "middle": (epochs + 1) // 2, "last": epochs}
    return {named[part] if part in named else int(part) for part in spec.split(",") if part.strip()}


@torch.no_grad()
def draw_predictions(run: Session, epoch: int, count: int = 3) -> Path:
    """noisy | denoised | clean for the first validation images, as the model stands after `epoch`."""
    run.model.eval()
    items = [run.datasets["val"][index] for index in range(min(count, len(run.datasets["val"])))]
    denoised = [run.model(noisy[None].to(run.device), sigma.to(run.device))[0].cpu() for noisy, _, sigma in items]
    names = [f"epoch {epoch}, {run.datasets['val'].name(index)}" for index in range(len(items))]
    path = Path(run.config.image_dir) / f"val_prediction_epoch_{epoch}.png"
    return plot_predictions([i[0] for i in items], denoised, [i[1] for i in items], path, names=names)


def train(config: TrainConfig | None = None, **overrides) -> dict:
    """Train a UNet as `config` says (fields may also be given as keyword arguments).

    Under torchrun every process runs this; the global batch is split between them and only
    rank 0 logs and writes files. Returns {"history": [...per-epoch dicts...], "best": path,
    "last": path, "out_dir": path}.
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides)
    out_dir = Path(config.out_dir)
    last_path, best_path = out_dir / "last.pth", out_dir / "best.pth"
    run = start_session(config)
    start_epoch, step, best_psnr, history = 1, 0, -math.inf, []
    if config.resume and last_path.exists():
        start_epoch, step, best_psnr, history = resume(run, last_path)
    run.log(
        f"training on {run.device} x {run.world_size}: {len(run.datasets['train'])} train / "
        f"{len(run.datasets['val'])} val images, {sum(p.numel() for p in run.model.parameters()):,} parameters, "
        f"precision {run.amp}"
    )
    drawn = prediction_epochs(config.prediction_epochs, config.epochs)

    for epoch in range(start_epoch, config.epochs + 1):
        if config.max_minutes > 0 and sum(h["seconds"] for h in history) >= 60 * config.max_minutes:
            run.log(f"stopping: the time budget of {config.max_minutes} minutes is spent")
            break
        frozen = set_trainable(run.model, epoch, config.freeze_epochs)
        trained = train_epoch(run, epoch, step)
        step = trained.pop("step")
        record = {
            "epoch": epoch,
            "step": step,
            "train_loss": trained.pop("train_loss"),
            **validate(run.model, run.val_loader, run.device),  # unwrapped: processes may hold different counts
            "lr": run.optimizer.param_groups[0]["lr"],
            "frozen_levels": frozen,
            **trained,
        }
        history.append(record)
        run.log(
            f"epoch {epoch}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}, "
            f"val PSNR {record['val_psnr']:.2f} dB (noisy {record['val_psnr_noisy']:.2f} dB), {record['seconds']} s"
        )
        is_best, best_psnr = record["val_psnr"] > best_psnr, max(best_psnr, record["val_psnr"])
        if run.main_process:
            state = checkpoint_state(run, epoch, step, best_psnr, history)
            if is_best:
                save_checkpoint(best_path, **state)
            save_checkpoint(last_path, **state)
            write_json_atomic(out_dir / "history.json", {"history": history})
            plot_history(history, Path(config.image_dir) / "loss_plot.png")
            if epoch in drawn:
                draw_predictions(run, epoch)

    return {"history": history, "best": best_path, "last": last_path, "out_dir": out_dir}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Every TrainConfig field (the network's included) is a --flag with its help, default and choices."""
    return parse_flags(TrainConfig, argv, __doc__)


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
    if not distributed.is_main():
        return
    best = max(result["history"], key=lambda h: h["val_psnr"])
    print(f"best validation PSNR {best['val_psnr']:.2f} dB at epoch {best['epoch']}: {result['best']}")


if __name__ == "__main__":
    main()
