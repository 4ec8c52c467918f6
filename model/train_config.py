"""The settings of a training run (`TrainConfig`) and the presets: every field is a flag of
`python -m model.train`, with its help, grouped by what it sets."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import constants as C
from model.config_flags import group, option
from model.fine_tune import RESET_HEAD_CHOICES
from model.jpeg import BEST_QUALITY
from model.losses import COLOUR_WEIGHTED_LOSSES, LOSSES, SIGMA_FLOOR
from model.precision import AMP_CHOICES
from model.tasks import Colorize, Denoise, SuperResolution, Task
from model.unet import UNetConfig

AUTO_CHOICES = ("auto", "yes", "no")
DATA, NETWORK, NOISE, SCHEDULE, LOSS, RUN = "data", "task and warm start", "noise", "schedule", "loss", "run"


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
    texture_candidates: int = option(
        1,
        "each photo crop is the most textured (largest mean neighbour difference) of this many drawn: "
        "light noise's error lies in texture, which flat crops do not teach",
        section=DATA,
    )
    jpeg_fraction: float = option(
        0.0,
        "share of training crops JPEG-compressed, their target too, before noise is added (model/jpeg.py): "
        "most photos were JPEGs before they got noisy",
        section=DATA,
    )
    jpeg_quality: int = option(
        75, f"lowest quality of --jpeg-fraction's crops, drawn uniformly up to {BEST_QUALITY}", section=DATA
    )
    chroma_gain: float = option(
        1.0,
        "each training crop's colour scaled by a gain drawn from [1, this] (model/chroma.py), the target too: "
        "the photos that trail CBM3D most hold more colour detail than the training set",
        section=DATA,
    )
    zoom_out_fraction: float = option(
        0.0,
        "share of training crops cut from the photos downscaled by --zoom-out-factor (model/photo_crops.py): "
        "the photos that trail CBM3D most are whole scenes in 512 px, with more detail per pixel",
        section=DATA,
    )
    zoom_out_factor: float = option(2.0, "how much --zoom-out-fraction's photos are downscaled (> 1)", section=DATA)
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
    add_refine_blocks: int = option(
        0, "with --init: grow this many refine blocks onto it (they start as the identity)", section=NETWORK
    )
    refine_only: bool = option(
        False, "train the refine blocks only, the rest frozen (a step skips the trunk's backward pass)", section=NETWORK
    )
    add_light_refine: bool = option(
        False,
        "with --init: give light noise its own copy of the refine blocks, blended in by light_gate below "
        "twice --light-sigma (the network group's flag sets the gate here)",
        section=NETWORK,
    )
    add_light_blocks: int = option(
        0,
        "with --init: grow this many blocks onto its light-noise copy (they start as the identity)",
        section=NETWORK,
    )
    add_light_network: bool = option(
        False,
        "with --init: give light noise its own copy of the whole network, blended in by light_gate below "
        "twice its light_sigma (train the copy alone with --light-only)",
        section=NETWORK,
    )
    light_only: bool = option(
        False,
        "train the light-noise copy only (the whole network's, else the refine blocks'): "
        "the output from twice light_sigma up stays as it was",
        section=NETWORK,
    )
    refine_lr_factor: float = option(
        1.0, "refine blocks' learning rate = lr * this (fresh blocks on a trained network need more)", section=NETWORK
    )
    light_lr_factor: float = option(
        0.0,
        "> 0: the light-noise blocks' learning rate = lr * this, and refine_lr_factor the other refine blocks' only",
        section=NETWORK,
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
    loss_sigma_floor: float = option(
        SIGMA_FLOOR,
        "mse-per-variance: lower sigmas weigh as this one (higher: heavy noise keeps more weight)",
        section=LOSS,
    )
    colour_loss_weight: float = option(
        1.0,
        "mse and mse-per-variance: the colour part of each pixel's error (its channels' differences from "
        "their mean) weighs this many times the grey part: light noise's excess error lies in colour",
        section=LOSS,
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

    def trained_blocks(self) -> str:
        """The blocks that alone train (`set_trainable`'s `only`), or "" for the whole network."""
        return "refine" if self.refine_only else "light" if self.light_only else ""

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
        # bf16 (where native) and channels_last train 2.1x faster on a 2-core AVX512-BF16 CPU, so 12
        # epochs take less time than fp32's 8 did, and score higher (21.52 against 21.06 dB on the test photos)
        | {"repeats": 6, "epochs": 12, "amp": "auto", "channels_last": "yes"},
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
    if config.loss_sigma_floor <= 0:
        raise ValueError(f"loss_sigma_floor must be > 0, got {config.loss_sigma_floor}")
    if config.colour_loss_weight <= 0 or (config.colour_loss_weight != 1 and config.loss not in COLOUR_WEIGHTED_LOSSES):
        raise ValueError(
            f"colour_loss_weight must be > 0, and other than 1 only with a loss in {list(COLOUR_WEIGHTED_LOSSES)}; "
            f"got {config.colour_loss_weight} with {config.loss!r}"
        )
    if config.reset_head not in RESET_HEAD_CHOICES:
        raise ValueError(f"reset_head must be one of {list(RESET_HEAD_CHOICES)}, got {config.reset_head!r}")
    if config.channels_last not in AUTO_CHOICES or config.compile not in AUTO_CHOICES:
        raise ValueError(f"channels_last and compile must be one of {list(AUTO_CHOICES)}")
    if config.add_refine_blocks and not config.init:
        raise ValueError("add_refine_blocks grows an --init network; from scratch, set refine_blocks")
    if (config.refine_only or config.light_only) and config.freeze_epochs:
        raise ValueError("refine_only and light_only freeze the whole trunk; freeze_epochs must then be 0")
    if config.refine_only and config.light_only:
        raise ValueError("refine_only and light_only each train one set of blocks: choose one")
    if (config.add_light_refine or config.add_light_blocks or config.add_light_network) and not config.init:
        raise ValueError(
            "add_light_refine, add_light_blocks and add_light_network grow an --init network; "
            "from scratch, set light_refine or light_network"
        )
    if not 0 <= config.synthetic_fraction < 1:
        raise ValueError(f"synthetic_fraction must be in [0, 1), got {config.synthetic_fraction}")
    if config.texture_candidates < 1:
        raise ValueError(f"texture_candidates must be >= 1, got {config.texture_candidates}")
    if not 0 <= config.jpeg_fraction <= 1 or not 1 <= config.jpeg_quality <= BEST_QUALITY:
        raise ValueError(
            f"jpeg_fraction must be in [0, 1] and jpeg_quality in [1, {BEST_QUALITY}], got {config.jpeg_fraction}, "
            f"{config.jpeg_quality}"
        )
    if config.chroma_gain < 1:
        raise ValueError(f"chroma_gain must be >= 1, got {config.chroma_gain}")
    if not 0 <= config.zoom_out_fraction <= 1 or config.zoom_out_factor <= 1:
        raise ValueError(
            f"zoom_out_fraction must be in [0, 1] and zoom_out_factor > 1, got {config.zoom_out_fraction}, "
            f"{config.zoom_out_factor}"
        )
    if world_size > 1 and (config.freeze_epochs > 0 or config.batch_size == 0):
        raise ValueError("with several processes (DDP) freeze_epochs must be 0 and batch_size given")
    if config.batch_size % world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {world_size} processes")
    config.make_task()  # its own checks: noise levels on the [0, 1] scale, the sr scale
