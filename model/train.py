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
denoiser at 5, 15, 25 and 50/255 of its range), after every epoch or every `--val-seconds`;
with `--ema-decay` the moving average of the weights is scored too. The run folder gets
`best.pth` (the best weights so far, raw or averaged, with their config), `last.pth` (all of
the state), `history.json` (every validation and the run's facts: device, steps, throughput)
and `split.json` (which photos were used); `model.evaluate --run` reads it, and
`model.ship_weights` turns it into the shipped checkpoint. Training never writes
model/storage/trained_unet.pth itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

import constants as C
from model import distributed
from model.checkpoint import load_checkpoint, load_model, save_checkpoint
from model.config_flags import group, make_parser, option, parse_flags
from model.dataset import list_images
from model.dead_leaves import dead_leaves_set
from model.device import pick_device
from model.files import write_json_atomic
from model.fine_tune import RESET_HEAD_CHOICES, encoder_levels, reset_head, set_trainable, wants_new_head
from model.losses import LOSSES, TrainingLoss
from model.metrics import psnr
from model.photo_crops import CropSampler, centre_box, read_photos
from model.plots import plot_history, plot_predictions
from model.precision import AMP_CHOICES, AMP_DTYPES, resolve_amp
from model.split import default_split, load_split
from model.tasks import Colorize, Denoise, SuperResolution, Task
from model.unet import UNet, UNetConfig

VAL_SIGMAS = (5 / 255, 15 / 255, 25 / 255, 50 / 255)  # a blind denoiser's: light noise, and the literature's
BATCH_CANDIDATES = (16, 32, 64, 128, 256)  # tried by --batch-size 0
SYNTHETIC_IMAGES, SYNTHETIC_SIDE = 64, 256  # the dead-leaves set of --synthetic-fraction
AUTO_CHOICES = ("auto", "yes", "no")
# dense bf16 tensor-core peak by GPU name, from the vendors' data sheets (SXM parts)
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}

DATA, NETWORK, NOISE, SCHEDULE, LOSS, RUN = "data", "task and warm start", "noise", "schedule", "loss", "run"


class TrainingDiverged(RuntimeError):
    """The loss kept being NaN or infinite."""


@dataclass
class TrainConfig:
    """One training run: every field is a `python -m model.train` flag, with this help.

    The defaults are the original project's network and settings where they are sound; a
    preset (`TrainConfig.preset("demo")`, `--preset demo`) starts from other defaults.
    """

    data_dir: str = option(
        "",
        "photos: a folder (AFHQ layout, or a folder per class; split here), a pack (utils/make_pack.py) "
        "or a set with a split.json (data/pretrain); empty: AFHQ if downloaded, else data/demo",
        section=DATA,
    )
    split_file: str = option("", "a manifest from utils/split_data.py instead of data_dir's split", section=DATA)
    val_dir: str = option("", "validation photos instead of the split's", section=DATA)
    crop_size: int = option(128, "side of the random training crops (the original resized to 224)", section=DATA)
    eval_crop_size: int = option(256, "side of the validation centre crops", section=DATA)
    repeats: int = option(1, "an epoch is this many crops per training photo", section=DATA)
    sampling: str = option(
        "photo",
        "crops drawn over photos first (each photo counts the same) or uniformly over all pixels",
        ("photo", "pixel"),
        section=DATA,
    )
    synthetic_fraction: float = option(
        0.0, "share of every batch cut from dead-leaves images (model/dead_leaves.py)", section=DATA
    )
    model: UNetConfig = group(UNetConfig, "network (ignored with --init, which brings its own)")
    init: str = option("", "a checkpoint to start from (its architecture is used)", section=NETWORK)
    task: str = option("denoise", "denoise, sr (super-resolution) or colorize", ("denoise", "sr", "colorize"), NETWORK)
    scale: int = option(2, "sr: downscaling factor", section=NETWORK)
    sr_noise: float = option(0.0, "sr: noise sigma added at low resolution", section=NETWORK)
    reset_head: str = option(
        "auto",
        "zero the output convolution of --init weights, so a residual U-Net starts from its input: "
        "auto (for sr and colorize), yes or no",
        RESET_HEAD_CHOICES,
        NETWORK,
    )
    freeze_epochs: int = option(
        0, "> 0: encoder frozen this many epochs, then unfrozen a level per epoch", section=NETWORK
    )
    encoder_lr_factor: float = option(
        1.0, "encoder learning rate = lr * this (e.g. 0.1 when fine-tuning)", section=NETWORK
    )
    sigma: float = option(C.NOISE_SIGMA, "noise sigma on the [0, 1] scale (the lowest, with sigma_max)", section=NOISE)
    sigma_max: float = option(
        -1.0, "> sigma: train on every sigma in [sigma, sigma_max] (a blind denoiser)", section=NOISE
    )
    sigma_power: float = option(
        1.0, "sigma + (sigma_max - sigma) * u**power, u uniform; > 1 favours low levels", section=NOISE
    )
    clip_noisy: bool = option(False, "clip noisy inputs to [0, 1] (the original did)", section=NOISE)
    epochs: int = option(10, "length of the schedule in epochs (unless --minutes)", section=SCHEDULE)
    minutes: float = option(
        0.0, "> 0: the schedule runs for this many training minutes instead of epochs", section=SCHEDULE
    )
    stop_minutes: float = option(
        0.0, "> 0: end this sitting after this many training minutes (--resume goes on)", section=SCHEDULE
    )
    batch_size: int = option(
        16, "crops per step, over all processes; 0: the smallest within 10% of the best crops/s", section=SCHEDULE
    )
    lr: float = option(1e-3, "peak learning rate (Adam)", section=SCHEDULE)
    final_lr_fraction: float = option(0.01, "the cosine ends at lr times this", section=SCHEDULE)
    warmup_fraction: float = option(0.0, "share of the schedule spent warming up linearly", section=SCHEDULE)
    val_seconds: float = option(
        90.0, "with --minutes: validate (and save) every this many training seconds", section=SCHEDULE
    )
    loss: str = option(
        "mse",
        "pixel loss; mse matches the PSNR it is judged by (psnr: minus each crop's PSNR; mse-per-variance: "
        "each crop's squared error over its sigma^2, so every noise level counts the same)",
        tuple(LOSSES),
        LOSS,
    )
    perceptual_weight: float = option(
        0.0, "> 0: add a VGG16 feature loss (needs the ImageNet weights locally)", section=LOSS
    )
    grad_clip: float = option(1.0, "gradient norm clipping", section=LOSS)
    max_bad_steps: int = option(10, "non-finite losses in a row before training stops", section=LOSS)
    ema_decay: float = option(0.0, "> 0: also validate a moving average of the weights, decaying this", section=LOSS)
    out_dir: str = option(str(C.RUNS_DIR / "latest"), "run folder: best.pth, last.pth, history.json", section=RUN)
    image_dir: str = option(str(C.IMAGE_DIR), "where the loss plot and validation predictions go", section=RUN)
    prediction_epochs: str = option(
        "first,middle,last", "epochs whose validation predictions are drawn (--minutes: the last step's)", section=RUN
    )
    seed: int = option(C.SEED, "seed of the split, crops and noise (the validation noise is fixed)", section=RUN)
    device: str = option("", "cuda, mps or cpu; empty: cuda, else mps, else cpu", section=RUN)
    amp: str = option(
        "none", "autocast precision; fp16 adds a gradient scaler; auto: bf16 where native", AMP_CHOICES, RUN
    )
    channels_last: str = option("auto", "channels_last memory format: auto (on CUDA), yes or no", AUTO_CHOICES, RUN)
    compile: str = option("auto", "torch.compile the network: auto (on CUDA), yes or no", AUTO_CHOICES, RUN)
    threads: int = option(0, "> 0: torch.set_num_threads (0: all cores)", section=RUN)
    resume: bool = option(False, "continue the run in out_dir from its last.pth", section=RUN)

    @classmethod
    def preset(cls, name: str, **settings) -> TrainConfig:
        """A preset's config (PRESETS), with `settings` on top."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
        return cls(**{**PRESETS[name][1], **settings})

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
BLIND = {"sigma": 0.0, "sigma_max": 0.5, "sigma_power": 2.0}  # the shipped denoiser's noise levels
SHIPPED_RECIPE = {**BLIND, "init": str(C.CHECKPOINT_PATH), "loss": "mse", "amp": "auto", "ema_decay": 0.999}
# name -> (what it is for, its settings)
PRESETS: dict[str, tuple[str, dict]] = {
    "demo": (
        "`make demo`: a 32-wide U-Net on the embedded photos at sigma 0.5, minutes on a laptop CPU",
        {"data_dir": str(C.DEMO_DIR), "out_dir": str(C.RUNS_DIR / "demo"), "base_channels": 32, "crop_size": 96}
        | {"repeats": 6, "epochs": 8},
    ),
    "cpu-sitting": (
        "the shipped denoiser, further, on every CPU core: the light-noise study's winner (crops per photo, 3e-5)",
        {**SHIPPED_RECIPE, "data_dir": str(C.PRETRAIN_DIR), "out_dir": str(C.RUNS_DIR / "cpu-sitting")}
        | {"minutes": 120.0, "val_seconds": 1200.0, "lr": 3e-5, "warmup_fraction": 0.03, "eval_crop_size": 512},
    ),
    "gpu": (
        "the shipped denoiser on one GPU: the fourth GPU run's recipe (crops per pixel, batch 256, 1e-4)",
        {**SHIPPED_RECIPE, "data_dir": str(C.PRETRAIN_DIR), "out_dir": str(C.RUNS_DIR / "gpu")}
        | {"minutes": 60.0, "val_seconds": 60.0, "lr": 1e-4, "final_lr_fraction": 0.01, "warmup_fraction": 0.03}
        | {"batch_size": 256, "sampling": "pixel", "eval_crop_size": 512},
    ),
}


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


def check_config(config: TrainConfig, world_size: int) -> None:
    """Refuse settings that cannot work, before any data is read."""
    if (Path(config.out_dir) / "last.pth").exists() and not config.resume:
        raise FileExistsError(f"{config.out_dir}: already holds a run; pass resume=True (--resume) or another out_dir")
    if config.loss not in LOSSES or config.amp not in AMP_CHOICES:
        raise ValueError(f"loss must be one of {list(LOSSES)} and amp one of {list(AMP_CHOICES)}")
    if config.reset_head not in RESET_HEAD_CHOICES:
        raise ValueError(f"reset_head must be one of {list(RESET_HEAD_CHOICES)}, got {config.reset_head!r}")
    if config.channels_last not in AUTO_CHOICES or config.compile not in AUTO_CHOICES:
        raise ValueError(f"channels_last and compile must be one of {list(AUTO_CHOICES)}")
    if not 0 <= config.synthetic_fraction < 1:
        raise ValueError(f"synthetic_fraction must be in [0, 1), got {config.synthetic_fraction}")
    if world_size > 1 and (config.freeze_epochs > 0 or config.batch_size == 0):
        raise ValueError("with several processes (DDP) freeze_epochs must be 0 and batch_size given")
    if config.batch_size % world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {world_size} processes")
    config.make_task()  # its own checks: noise levels on the [0, 1] scale, the sr scale


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


def load_photos(manifest: dict, config: TrainConfig) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
    """(train photos, val photos, val names), decoded once as (3, H, W) uint8."""
    root = Path(manifest["root"])
    train, _ = read_photos([root / name for name in manifest["train"]])
    val_paths = list_images(Path(config.val_dir)) if config.val_dir else [root / name for name in manifest["val"]]
    val, kept = read_photos(val_paths)
    return train, val, [path.name for path in kept]


def validation_tasks(task: Task) -> list[Task]:
    """A blind denoiser is validated at each of VAL_SIGMAS in its range, any other task as it trains."""
    if not isinstance(task, Denoise):
        return [task]
    low, high = task.sigma
    levels = [s for s in VAL_SIGMAS if low <= s <= high] if high > low else [low]
    return [Denoise((s, s), 1.0, task.clip) for s in levels or [(low + high) / 2]]


def validation_set(photos: list[torch.Tensor], config: TrainConfig, device: torch.device) -> list[tuple]:
    """(input, clean, sigma) per photo and validation task: centre crops degraded once, with the
    project's seed whatever the run's, so runs with different seeds score the same inputs."""
    generator = torch.Generator().manual_seed(C.SEED)
    items = []
    for photo in photos:
        left, top, right, bottom = centre_box(photo.shape[-1], photo.shape[-2], config.eval_crop_size)
        clean = photo[:, top:bottom, left:right].float()[None] / 255
        for task in validation_tasks(config.make_task()):
            degraded, sigma = task.degrade_batch(clean, generator)
            items.append((degraded.to(device), clean.to(device), sigma.to(device)))
    return items


# ---------------------------------------------------------------- the model as it trains


def learning_rate(progress: float, config: TrainConfig) -> float:
    """Linear warm-up over the first `warmup_fraction` of the schedule, then a cosine to lr * final_lr_fraction."""
    if progress < config.warmup_fraction:
        return config.lr * progress / config.warmup_fraction
    done = min(1.0, (progress - config.warmup_fraction) / (1 - config.warmup_fraction))
    low = config.lr * config.final_lr_fraction
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * done))


def wanted(choice: str, device: torch.device) -> bool:
    """An auto/yes/no option: auto means on CUDA."""
    return choice == "yes" or (choice == "auto" and device.type == "cuda")


class Trainer:
    """One process's model, optimizer, moving average and data; `step()` is one optimisation step.

    Under torchrun every process draws the whole global batch from the same generator and
    trains on its share, so N processes take exactly the steps of one with the same batch."""

    def __init__(self, model: UNet, config: TrainConfig, device: torch.device, train_photos: list[torch.Tensor]):
        self.model, self.config, self.device = model, config, device
        self.rank, self.world_size, _ = distributed.world()
        self.generator = torch.Generator(device).manual_seed(config.seed)
        self.sampler = CropSampler(train_photos, config.crop_size, device, self.generator, config.sampling)
        self.synthetic = None
        if config.synthetic_fraction > 0:
            images = dead_leaves_set(train_photos, SYNTHETIC_IMAGES, SYNTHETIC_SIDE, config.seed)
            self.synthetic = CropSampler(images, config.crop_size, device, self.generator)
        self.task = config.make_task()
        self.amp = resolve_amp(config.amp, device)
        self.layout = torch.channels_last if wanted(config.channels_last, device) else torch.contiguous_format
        self.model.to(device, memory_format=self.layout)
        encoder = {id(p) for level in encoder_levels(model) for p in level.parameters()}
        self.optimizer = torch.optim.Adam(
            [
                {"params": [p for p in model.parameters() if id(p) not in encoder], "lr_scale": 1.0},
                {"params": [p for p in model.parameters() if id(p) in encoder], "lr_scale": config.encoder_lr_factor},
            ],
            lr=config.lr,
            fused=device.type == "cuda",
        )
        # fp16 needs loss scaling so small gradients do not flush to zero; bf16 has fp32's range
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == "fp16")
        self.loss_function = TrainingLoss(config.loss, config.perceptual_weight).to(device)
        self.ema = [p.detach().clone() for p in model.parameters()] if config.ema_decay > 0 else None
        # gradients are averaged over processes in backward(); one process trains the model as is
        self.net = DistributedDataParallel(model) if self.world_size > 1 else model
        self.batch_size = config.batch_size

    def sample(self, batch: int) -> torch.Tensor:
        """Clean crops: `synthetic_fraction` of the batch from the dead-leaves set, the rest from photos."""
        synthetic = round(batch * self.config.synthetic_fraction) if self.synthetic else 0
        if not synthetic:
            return self.sampler.sample(batch)
        return torch.cat([self.sampler.sample(batch - synthetic), self.synthetic.sample(synthetic)])

    def forward_loss(self, batch: int) -> torch.Tensor:
        """The loss on this process's share of `batch` fresh crops."""
        clean = self.sample(batch)
        degraded, sigma = self.task.degrade_batch(clean, self.generator)
        share = slice(self.rank * batch // self.world_size, (self.rank + 1) * batch // self.world_size)
        clean = clean[share].contiguous(memory_format=self.layout)
        degraded, sigma = degraded[share].contiguous(memory_format=self.layout), sigma[share]
        with torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp], enabled=self.amp != "none"):
            output = self.net(degraded, sigma)
        return self.loss_function(output.float(), clean, sigma)

    def step(self, lr: float) -> float | None:
        """One step at learning rate `lr`; returns the loss, or None if it was not finite (skipped)."""
        for params in self.optimizer.param_groups:
            params["lr"] = lr * params["lr_scale"]
        loss = self.forward_loss(self.batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        # every process must take the same decision, or DDP's gradient averaging would hang
        (finite,) = distributed.all_reduce([float(torch.isfinite(loss))], "min")
        if not finite:
            return None
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, [p.detach() for p in self.model.parameters()], 1 - self.config.ema_decay)
        return loss.item()

    def measure_batch_size(self) -> dict[int, float]:
        """Crops per second of forward + backward for each candidate batch (a few eager steps each)."""
        rates = {}
        for batch in BATCH_CANDIDATES:
            for timed in (False, True):
                steps = 3 if timed else 1
                synchronize(self.device)
                started = time.perf_counter()
                for _ in range(steps):
                    self.forward_loss(batch).backward()
                synchronize(self.device)
                rates[batch] = batch * steps / (time.perf_counter() - started)
            self.optimizer.zero_grad(set_to_none=True)
        return rates

    def compile(self) -> str:
        """Compile the network for training if asked (on CUDA by default); eager if compiling fails."""
        if not wanted(self.config.compile, self.device):
            return "eager"
        eager = self.net
        try:
            self.net = torch.compile(eager)
            self.forward_loss(self.batch_size).backward()  # compiles now, outside the timed schedule
            self.optimizer.zero_grad(set_to_none=True)
            return "compiled"
        except Exception as error:  # noqa: BLE001 - an unsupported backend must not cost the run
            print(f"torch.compile failed ({type(error).__name__}: {str(error).splitlines()[0][:200]}); eager")
            self.net = eager
            self.optimizer.zero_grad(set_to_none=True)
            return "eager"

    @torch.no_grad()
    def validate(self, items: list[tuple], weights: list[torch.Tensor] | None = None) -> dict:
        """Mean MSE and PSNR over this process's share of the items (the whole world's mean),
        with the model's weights or the given ones, in fp32 as people denoise: under bf16 autocast
        scores moved with the weights' rounding by as much as a sitting gains."""
        saved = None
        if weights is not None:
            saved = [p.detach().clone() for p in self.model.parameters()]
            copy_into(list(self.model.parameters()), weights)
        self.model.eval()
        mse = psnr_sum = input_sum = 0.0
        mine = items[self.rank :: self.world_size]
        for degraded, clean, sigma in mine:
            output = self.model(degraded.contiguous(memory_format=self.layout), sigma)
            mse += (output - clean).square().mean().item()
            psnr_sum += psnr(output.clamp(0, 1), clean).item()
            input_sum += psnr(degraded, clean).item()
        self.model.train()
        if saved is not None:
            copy_into(list(self.model.parameters()), saved)
        mse, psnr_sum, input_sum, count = distributed.all_reduce([mse, psnr_sum, input_sum, len(mine)])
        return {"val_loss": mse / count, "val_psnr": psnr_sum / count, "val_psnr_noisy": input_sum / count}

    def state(self) -> dict:
        """Everything a resumed run needs besides the clock and the history."""
        return {
            "model": self.model.state_dict(),
            "ema": self.ema,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            "batch_size": self.batch_size,
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            copy_into(self.ema, state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"].cpu())
        self.batch_size = state["batch_size"]


def copy_into(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for target, source in zip(targets, sources, strict=True):
            target.copy_(source)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_crop(model: UNet, crop: int, device: torch.device) -> float:
    """Forward + backward FLOPs of one training crop, counted by PyTorch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, crop, crop, device=device)
    with FlopCounterMode(display=False) as counter:
        model.eval()(x, torch.full((1,), 0.1, device=device)).sum().backward()  # eval: batch norm's statistics stay
    model.train().zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def save_best(path: Path, model: UNet, weights: list[torch.Tensor], facts: dict) -> None:
    """The best weights (raw or averaged) with what rebuilds and describes them; no optimizer."""
    state = model.state_dict()
    for (name, _), weight in zip(model.named_parameters(), weights, strict=True):
        state[name] = weight.detach()
    save_checkpoint(path, model={k: v.cpu() for k, v in state.items()}, model_config=model.config, **facts)


@torch.no_grad()
def draw_predictions(model: UNet, items: list[tuple], names: list[str], path: Path, count: int = 3) -> Path:
    """input | output | clean for the first validation items, as the model stands."""
    model.eval()
    shown = items[:: max(1, len(items) // len(names))][:count]  # one item per photo
    outputs = [model(degraded, sigma)[0].cpu() for degraded, _, sigma in shown]
    model.train()
    inputs, cleans = [i[0][0].cpu() for i in shown], [i[1][0].cpu() for i in shown]
    return plot_predictions(inputs, outputs, cleans, path, names[: len(shown)])


def prediction_epochs(spec: str, epochs: int) -> set[int]:
    """The epochs named by `--prediction-epochs`: numbers and/or first, middle, last."""
    named = {"first": 1, "middle": (epochs + 1) // 2, "last": epochs}
    return {named[part] if part in named else int(part) for part in spec.split(",") if part.strip()}


# ---------------------------------------------------------------- the loop


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

    # data: decoded once, held on the device as uint8
    manifest = photo_manifest(config)
    train_photos, val_photos, val_names = load_photos(manifest, config)
    if main_process:
        write_json_atomic(out_dir / "split.json", manifest)
    val_items = validation_set(val_photos, config, device)

    # model: the warm start's architecture and weights, or the config's network from its seed
    model = load_model(config.init, device)[0] if config.init else UNet(config.model)
    if wants_new_head(config, model) and saved is None:
        reset_head(model)
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
            record["val_psnr_ema"] = trainer.validate(val_items, trainer.ema)["val_psnr"]
        return record

    # the schedule: where a saved run stopped, or from the start (validating a warm start first)
    frozen, current_lr = set_trainable(model, 1, config.freeze_epochs), 0.0
    if saved:
        step, seconds, best, history = saved["step"], saved["seconds"], saved["best"], saved["history"]
        log(f"resuming {out_dir} at step {step} ({seconds:.0f} s); best {best['psnr']:.3f} dB")
    else:
        step, seconds, best, history = 0, 0.0, {"psnr": -math.inf}, []
        if config.init:
            history.append(validation(0, 0.0, [], 0))
            save(history[-1], 0, 0.0)
            log(f"start: val PSNR {history[-1]['val_psnr']:.3f} dB")
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
                f"{ema} (input {record['val_psnr_noisy']:.2f} dB)"
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
            frozen = set_trainable(model, record["epoch"] + 1, config.freeze_epochs)
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
