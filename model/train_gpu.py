"""Train the shipped denoiser fast on one GPU: the data lives on the GPU, the clock sets the schedule.

    python -m model.train_gpu --pack data/pretrain --out runs/gpu --minutes 60
    python -m model.train_gpu --pack data/pack --out runs/smoke --minutes 0.3 --device cpu

A GPU is fast enough that nothing may wait on Python or the CPU:

- the photos (a set with a split.json, such as data/pretrain, or a pack of train/ and val/
  folders, `utils/make_pack.py`) are decoded once and held on the device as uint8 tiles;
  crops (per pixel or per photo, `--sampling`), flips/rotations, noise levels and noise are
  drawn there, and `--synthetic-fraction` mixes in dead-leaves images (`model/dead_leaves.py`);
- bf16 autocast, channels_last, `torch.compile` on CUDA (eager if compiling fails), and a
  batch size measured at the start (`--batch-size 0`);
- the learning rate follows the wall clock (linear warm-up, then cosine to `--min-lr` at the end
  of `--minutes`), so a run of any length finishes its schedule;
- an exponential moving average (EMA) of the weights is validated beside the raw weights, in fp32 as
  people denoise (bf16 scores move with rounding by as much as a sitting gains), and
  whichever is best so far is written to `OUT/best.pth` (half precision, weights and config
  only, < 16 MiB) at every validation, so a run that is cut off still leaves its weights;
- the whole state (weights, EMA, optimizer, random generator, clock) goes to `OUT/last.pth`
  at every validation too: the same command with `--resume` goes on from there, so a
  schedule longer than one command's time limit runs as sittings (`--stop-minutes`).

It warm-starts from `--init` (the shipped checkpoint by default) and keeps its architecture,
or trains a named one from random weights (`--scratch`). `model/study.py` runs it as the arms
of a controlled experiment.
The same code runs on the CPU (the tests do, and so do the CPU sittings: `--device cpu
--threads 1`, bf16 where the CPU multiplies it natively unless `--no-bf16`), with torch 2.11 or
newer. `OUT/history.json` holds every validation and the run's facts: device, steps, crops,
pixels and throughput.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import constants as C
from model.checkpoint import load_checkpoint, load_model, save_checkpoint
from model.config_flags import option, parse_flags
from model.dataset import list_images
from model.dead_leaves import dead_leaves_set
from model.device import pick_device
from model.files import write_json_atomic
from model.losses import NOISE_WEIGHTED_LOSSES, PIXEL_LOSSES
from model.metrics import psnr
from model.precision import native_bf16
from model.split import load_split
from model.tasks import check_noise_levels
from model.unet import BLIND_DENOISER, DRUNET_LIKE, UNet

VAL_SIGMAS = (5 / 255, 15 / 255, 25 / 255, 50 / 255)  # the light noise of most photos, and the literature's
BATCH_CANDIDATES = (16, 32, 64, 128, 256)
ARCHITECTURES = {"shipped": BLIND_DENOISER, "drunet-like": DRUNET_LIKE}  # for --scratch
LOSSES = {**PIXEL_LOSSES, **NOISE_WEIGHTED_LOSSES}
SYNTHETIC_IMAGES, SYNTHETIC_SIDE = 64, 256  # the dead-leaves set of --synthetic-fraction
# dense bf16 tensor-core peak by GPU name, from the vendors' data sheets (SXM parts)
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


@dataclass
class GpuTrainConfig:
    pack: str = option(
        str(C.DATA_DIR / "pack"),
        "photos: a pack (train/ and val/ folders, utils/make_pack.py) or a set with split.json (data/pretrain)",
    )
    out: str = option(str(C.RUNS_DIR / "gpu"), "where best.pth and history.json are written")
    val_dir: str = option("", "validation photos; empty: PACK/val")
    init: str = option(str(C.CHECKPOINT_PATH), "checkpoint to warm-start from; its architecture is kept")
    scratch: str = option("", "train this architecture from random weights instead of --init", ("", *ARCHITECTURES))
    minutes: float = option(8.0, "length of the schedule, counted from the first timed step")
    stop_minutes: float = option(
        0.0, "> 0: end this sitting at this point of the schedule (saved; --resume goes on), e.g. to fit a time limit"
    )
    crop_size: int = option(128, "side of the random training crops")
    batch_size: int = option(0, "crops per step; 0: the smallest batch within 10% of the best measured crops/s")
    lr: float = option(2e-4, "peak learning rate (Adam)")
    min_lr: float = option(1e-6, "learning rate at the end of the cosine")
    warmup_fraction: float = option(0.03, "share of the minutes spent warming up linearly")
    ema_decay: float = option(0.999, "decay of the exponential moving average of the weights")
    sigma_max: float = option(0.5, "noise levels are sigma_max * u ** sigma_power, u uniform")
    sigma_power: float = option(2.0, "above 1, low noise levels are drawn more often")
    grad_clip: float = option(1.0, "gradient norm clipping")
    bf16: bool = option(True, "bf16 autocast where the device multiplies it natively; --no-bf16: fp32 throughout")
    loss: str = option(
        "mse",
        "pixel loss; mse matches the PSNR it is judged by (psnr: minus each crop's PSNR; mse-per-variance: "
        "each crop's squared error over its sigma^2, so every noise level counts the same)",
        tuple(LOSSES),
    )
    sampling: str = option(
        "pixel",
        "crops drawn uniformly over all pixels, or over photos first (each photo counts the same)",
        ("pixel", "photo"),
    )
    synthetic_fraction: float = option(0.0, "share of every batch cut from dead-leaves images (model/dead_leaves.py)")
    val_seconds: float = option(90.0, "validate, and save the best weights, this often")
    val_crop: int = option(512, "validation photos are centre crops of at most this side")
    device: str = option("", "cuda, mps or cpu; empty: the fastest available")
    threads: int = option(0, "CPU threads of torch; 0: torch's default (all cores)")
    compile: str = option("auto", "torch.compile the network: auto (on CUDA), yes or no", ("auto", "yes", "no"))
    seed: int = option(C.SEED, "seed of the training crops and noise (the validation noise is fixed)")
    resume: bool = option(False, "go on from OUT/last.pth (same command otherwise) instead of starting afresh")


# ---------------------------------------------------------------- data resident on the device


def read_photos(folder: Path, paths: list[Path] | None = None) -> list[torch.Tensor]:
    """Every image file below a folder (or the given ones) as a (3, H, W) uint8 tensor, decoded on all CPU cores."""
    paths = list_images(folder) if paths is None else paths
    if not paths:
        raise ValueError(f"{folder}: no images")

    def read(path: Path) -> torch.Tensor:
        with Image.open(path) as image:
            return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)

    with ThreadPoolExecutor() as pool:
        return list(pool.map(read, paths))


class CropSampler:
    """Random crops of a set of photos of any sizes, drawn on the device without a Python loop.

    Each photo is cut into tiles of 2*crop pixels at a stride of crop, so every crop position
    of the photo lies inside some tile; a batch is then one gather from the stacked tiles.

    With `sampling="photo"` a batch first draws photos, each as likely as any other, then a
    tile of the photo: a small photo counts as much as a 4K wallpaper.
    """

    def __init__(
        self,
        photos: list[torch.Tensor],
        crop: int,
        device: torch.device,
        generator: torch.Generator,
        sampling: str = "pixel",
    ):
        self.crop, self.device, self.generator, self.sampling = crop, device, generator, sampling
        side = 2 * crop
        tiles, valid, first_tile = [], [], []
        for photo in photos:
            height, width = photo.shape[-2:]
            if min(height, width) < crop:
                continue
            first_tile.append(len(tiles))
            photo = photo.to(device)
            for top in tile_origins(height, side, crop):
                for left in tile_origins(width, side, crop):
                    tile = photo[:, top : top + side, left : left + side]
                    valid.append(tile.shape[-2:])
                    tiles.append(F.pad(tile, (0, side - tile.shape[-1], 0, side - tile.shape[-2])))
        if not tiles:
            raise ValueError(f"no training photo is at least {crop}x{crop} pixels")
        self.tiles = torch.stack(tiles)  # (T, 3, side, side) uint8
        self.valid = torch.tensor(valid, device=device)  # (T, 2) height and width holding pixels
        self.first_tile = torch.tensor(first_tile, device=device)  # (P,) each photo's first tile
        self.tile_count = torch.diff(self.first_tile, append=torch.tensor([len(tiles)], device=device))
        self.offsets = torch.arange(crop, device=device)
        used = [p for p in photos if min(p.shape[-2:]) >= crop]
        self.photos, self.pixels = len(used), sum(p.shape[-1] * p.shape[-2] for p in used)

    def sample(self, batch: int) -> torch.Tensor:
        """(batch, 3, crop, crop) float crops in [0, 1], each in one of the 8 orientations."""
        if self.sampling == "photo":
            photo = torch.randint(len(self.first_tile), (batch,), device=self.device, generator=self.generator)
            within = torch.rand(batch, device=self.device, generator=self.generator) * self.tile_count[photo]
            index = self.first_tile[photo] + within.long()
        else:
            index = torch.randint(len(self.tiles), (batch,), device=self.device, generator=self.generator)
        room = (self.valid[index] - self.crop + 1).float()
        top, left = (torch.rand(batch, 2, device=self.device, generator=self.generator) * room).long().unbind(1)
        rows = (top[:, None] + self.offsets)[:, None, :, None]
        cols = (left[:, None] + self.offsets)[:, None, None, :]
        channels = torch.arange(3, device=self.device)[None, :, None, None]
        crops = self.tiles[index[:, None, None, None], channels, rows, cols].float() / 255
        flips = torch.rand(batch, 3, device=self.device, generator=self.generator) < 0.5
        crops = torch.where(flips[:, 0, None, None, None], crops.flip(-1), crops)
        crops = torch.where(flips[:, 1, None, None, None], crops.flip(-2), crops)
        return torch.where(flips[:, 2, None, None, None], crops.transpose(-1, -2), crops)


def training_set(folder: Path, val_dir: str = "") -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(train, val) photos of a pack (train/ and val/ folders, utils/make_pack.py) or of a built set
    with a split.json (data/pretrain: lossless, every photo); `val_dir` replaces the validation photos."""
    split = load_split(folder / "split.json") if (folder / "split.json").exists() else None

    def part(name: str) -> list[torch.Tensor]:
        return read_photos(folder, [folder / f for f in split[name]]) if split else read_photos(folder / name)

    return part("train"), read_photos(Path(val_dir)) if val_dir else part("val")


def tile_origins(length: int, side: int, stride: int) -> list[int]:
    """Tile starts along one axis: every `stride`, plus one flush with the end."""
    if length <= side:
        return [0]
    starts = list(range(0, length - side + 1, stride))
    return starts if starts[-1] == length - side else [*starts, length - side]


def centre_box(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the central side x side part of a photo (all of it along a
    shorter axis): the validation crop, here and in the pack (utils/make_pack.py)."""
    left, top = max(0, (width - side) // 2), max(0, (height - side) // 2)
    return left, top, min(width, left + side), min(height, top + side)


def centre_crop(image: Image.Image, side: int) -> Image.Image:
    return image.crop(centre_box(image.width, image.height, side))


def validation_set(photos: list[torch.Tensor], crop: int, device: torch.device) -> list[tuple]:
    """(noisy, clean, sigma) per photo and sigma: centre crops, noise drawn once with the project's seed,
    whatever the run's `--seed`, so that runs with different seeds score the same noisy photos."""
    generator = torch.Generator().manual_seed(C.SEED)
    items = []
    for photo in photos:
        left, top, right, bottom = centre_box(photo.shape[-1], photo.shape[-2], crop)
        clean = photo[:, top:bottom, left:right].float()[None] / 255
        for sigma in VAL_SIGMAS:
            noisy = clean + sigma * torch.randn(clean.shape, generator=generator)
            items.append((noisy.to(device), clean.to(device), sigma))
    return items


# ---------------------------------------------------------------- training


def learning_rate(progress: float, config: GpuTrainConfig) -> float:
    """Linear warm-up over the first `warmup_fraction` of the time, then cosine down to min_lr."""
    if progress < config.warmup_fraction:
        return config.lr * progress / config.warmup_fraction
    done = min(1.0, (progress - config.warmup_fraction) / (1 - config.warmup_fraction))
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * done))


def noisy_batch(clean: torch.Tensor, config: GpuTrainConfig, generator: torch.Generator) -> tuple:
    """Gaussian noise of a sigma drawn per crop; returns (noisy, sigma)."""
    uniform = torch.rand(len(clean), device=clean.device, generator=generator)
    sigma = config.sigma_max * uniform**config.sigma_power
    noise = torch.randn(clean.shape, device=clean.device, generator=generator)
    noisy = clean + noise * sigma[:, None, None, None]
    return noisy.contiguous(memory_format=torch.channels_last), sigma


class Trainer:
    """One model, its optimizer and its EMA; `step()` is one optimisation step on fresh crops."""

    def __init__(
        self,
        model: UNet,
        sampler: CropSampler,
        config: GpuTrainConfig,
        device: torch.device,
        synthetic: CropSampler | None = None,
    ):
        self.model, self.sampler, self.config, self.device = model, sampler, config, device
        self.synthetic = synthetic
        self.generator = sampler.generator
        self.bf16 = config.bf16 and native_bf16(device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type == "cuda")
        self.ema = [p.detach().clone() for p in model.parameters()]
        self.net = model
        self.batch_size = config.batch_size

    def forward_loss(self, batch: int) -> torch.Tensor:
        clean = self.sample(batch).contiguous(memory_format=torch.channels_last)
        noisy, sigma = noisy_batch(clean, self.config, self.generator)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            denoised = self.net(noisy, sigma)
        if self.config.loss in NOISE_WEIGHTED_LOSSES:
            return NOISE_WEIGHTED_LOSSES[self.config.loss](denoised.float(), clean, sigma)
        return PIXEL_LOSSES[self.config.loss](denoised.float(), clean)

    def sample(self, batch: int) -> torch.Tensor:
        """Clean crops: `synthetic_fraction` of the batch from the dead-leaves set, the rest from photos."""
        synthetic = round(batch * self.config.synthetic_fraction) if self.synthetic else 0
        if not synthetic:
            return self.sampler.sample(batch)
        return torch.cat([self.sampler.sample(batch - synthetic), self.synthetic.sample(synthetic)])

    def step(self, lr: float) -> torch.Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.forward_loss(self.batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.model.parameters()], 1 - self.config.ema_decay)
        return loss.detach()

    def state(self) -> dict:
        """What a resumed run needs besides the clock: weights, EMA, optimizer, generator, batch."""
        return {
            "model": self.model.state_dict(),
            "ema": self.ema,
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "batch_size": self.batch_size,
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        copy_into(self.ema, state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        self.batch_size = state["batch_size"]

    def measure_batch_size(self) -> dict[int, float]:
        """Crops per second of forward + backward for each candidate batch (eager, a few steps each)."""
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

    def compile(self, mode: str) -> str:
        """Compile the network for training (CUDA by default); fall back to eager if that fails."""
        if mode == "no" or (mode == "auto" and self.device.type != "cuda"):
            return "eager"
        try:
            self.net = torch.compile(self.model)
            self.forward_loss(self.batch_size).backward()  # compiles now, outside the timed schedule
            self.optimizer.zero_grad(set_to_none=True)
            return "compiled"
        except Exception as error:  # noqa: BLE001 - an unsupported backend must not cost the run
            print(f"torch.compile failed ({type(error).__name__}: {str(error).splitlines()[0][:200]}); eager")
            self.net = self.model
            self.optimizer.zero_grad(set_to_none=True)
            return "eager"

    @torch.no_grad()
    def validate(self, items: list[tuple], weights: list[torch.Tensor] | None = None) -> float:
        """Mean PSNR over the validation items, with the model's weights or the given ones.

        In fp32, as benchmarks/eval_quality.py measures and people denoise: under bf16 autocast
        scores were 0.045 dB lower and moved by +-0.006 dB with the weights' rounding alone, so
        the fifth CPU sitting saw +0.013 dB where fp32 finds -0.003 dB (storage/TRAINING_LOG.md)."""
        saved = None
        if weights is not None:
            saved = [p.detach().clone() for p in self.model.parameters()]
            copy_into(list(self.model.parameters()), weights)
        self.model.eval()
        scores = []
        for noisy, clean, sigma in items:
            denoised = self.model(noisy.contiguous(memory_format=torch.channels_last), sigma)
            scores.append(psnr(denoised.clamp(0, 1), clean))
        self.model.train()
        if saved is not None:
            copy_into(list(self.model.parameters()), saved)
        return torch.cat(scores).mean().item()


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
        model(x, torch.full((1,), 0.1, device=device)).sum().backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def save_weights(path: Path, model: UNet, weights: list[torch.Tensor], facts: dict) -> None:
    """Weights only, in half precision (7.8M parameters: 15.5 MB), with the config to rebuild them."""
    state = model.state_dict()
    for (name, _), weight in zip(model.named_parameters(), weights, strict=True):
        state[name] = weight
    half = {
        name: w.detach().to("cpu", torch.float16 if w.is_floating_point() else w.dtype) for name, w in state.items()
    }
    save_checkpoint(path, model=half, model_config=model.config, **facts)


def train_gpu(config: GpuTrainConfig) -> dict:
    """Run the schedule; return the run's facts (also written to OUT/history.json)."""
    started_at = time.time()
    check_noise_levels(0.0, config.sigma_max, config.sigma_power)
    if not 0 <= config.synthetic_fraction < 1:
        raise ValueError(f"--synthetic-fraction must be in [0, 1), got {config.synthetic_fraction}")
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = load_checkpoint(out / "last.pth") if config.resume else None
    torch.manual_seed(config.seed)
    generator = torch.Generator(device).manual_seed(config.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False  # training in bf16 autocast (or fp32: --no-bf16); validation in fp32

    # data: decoded once, then resident on the device
    pack = Path(config.pack)
    train_photos, val_photos = training_set(pack, config.val_dir)
    sampler = CropSampler(train_photos, config.crop_size, device, generator, config.sampling)
    synthetic = None
    if config.synthetic_fraction > 0:
        images = dead_leaves_set(train_photos, SYNTHETIC_IMAGES, SYNTHETIC_SIDE, config.seed)
        synthetic = CropSampler(images, config.crop_size, device, generator)
    val_items = validation_set(val_photos, config.val_crop, device)
    print(
        f"pack {pack}: {sampler.photos} train photos ({sampler.pixels / 1e6:.1f} MP, {len(sampler.tiles)} tiles), "
        f"{len(val_photos)} val photos x {len(VAL_SIGMAS)} sigmas; loaded in {time.time() - started_at:.1f} s"
    )

    # model: the warm start's architecture and weights, trained in channels_last
    if config.scratch:
        model = UNet(ARCHITECTURES[config.scratch]).to(device)
    else:
        model, _ = load_model(config.init, device)
    model = model.to(memory_format=torch.channels_last).train()
    trainer = Trainer(model, sampler, config, device, synthetic)
    flops = flops_per_crop(model, config.crop_size, device)
    if saved:
        trainer.restore(saved)
    elif not config.batch_size:
        rates = trainer.measure_batch_size()
        best_rate = max(rates.values())
        trainer.batch_size = min(b for b, rate in rates.items() if rate >= 0.9 * best_rate)
        print("crops/s by batch: " + ", ".join(f"{b}: {r:.0f}" for b, r in rates.items()))
    mode = trainer.compile(config.compile)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"{name}: batch {trainer.batch_size} of {config.crop_size}x{config.crop_size}, {mode}, bf16 {trainer.bf16}")

    # the schedule: clocked from here (or from where the saved run stopped), validation and saving every val_seconds
    facts = {
        "device": name,
        "train_photos": sampler.photos,
        "train_megapixels": round(sampler.pixels / 1e6, 1),
        "batch_size": trainer.batch_size,
        "crop_size": config.crop_size,
        "mode": mode,
    }
    if saved:
        best, history, step, train_seconds = saved["best"], saved["history"], saved["step"], saved["seconds"]
        print(f"resumed from {out / 'last.pth'} at {train_seconds:.0f} s, step {step}; best {best['psnr']:.3f} dB")
    else:
        best = {"psnr": trainer.validate(val_items), "weights": "init", "seconds": 0.0}
        history = [{"seconds": 0.0, "step": 0, "val_psnr": best["psnr"], "val_psnr_ema": best["psnr"]}]
        step, train_seconds = 0, 0.0
        print(f"start: val PSNR {best['psnr']:.3f} dB")
        save_weights(out / "best.pth", model, list(model.parameters()), {"gpu_run": {**facts, "best": best}})
    budget, last_step, loss_sum = 60 * config.minutes, step, torch.zeros((), device=device)
    next_val = (train_seconds // config.val_seconds + 1) * config.val_seconds
    clock = time.perf_counter() - train_seconds
    while True:
        elapsed = time.perf_counter() - clock
        done = elapsed >= budget or 0 < config.stop_minutes * 60 <= elapsed
        if done or elapsed >= next_val:
            synchronize(device)
            train_seconds = time.perf_counter() - clock
            loss = loss_sum.item() / max(1, step - last_step)  # mean since the last validation
            record = {"seconds": round(train_seconds, 1), "step": step, "loss": loss}
            loss_sum.zero_()
            last_step = step
            record["val_psnr"] = trainer.validate(val_items)
            record["val_psnr_ema"] = trainer.validate(val_items, trainer.ema)
            history.append(record)
            print(
                f"{record['seconds']:7.1f} s step {step}: loss {record['loss']:.4g}, "
                f"val PSNR {record['val_psnr']:.3f} dB, EMA {record['val_psnr_ema']:.3f} dB"
            )
            for kind, value, weights in (
                ("raw", record["val_psnr"], list(model.parameters())),
                ("ema", record["val_psnr_ema"], trainer.ema),
            ):
                if value > best["psnr"]:
                    best = {"psnr": value, "weights": kind, "seconds": record["seconds"], "step": step}
                    save_weights(out / "best.pth", model, weights, {"gpu_run": {**facts, "best": best}})
            write_json_atomic(out / "history.json", {**facts, "best": best, "history": history})
            progress = {"step": step, "seconds": train_seconds, "best": best, "history": history}
            save_checkpoint(
                out / "last.pth", **trainer.state(), **progress, config=asdict(config), model_config=model.config
            )
            if not math.isfinite(loss):
                print("stopping: the loss is not finite; best.pth holds the best weights before it")
                break
            next_val += config.val_seconds
            clock = time.perf_counter() - train_seconds  # validation time is not training time
            if done:
                break
        loss_sum += trainer.step(learning_rate(elapsed / budget, config))
        step += 1

    crops = step * trainer.batch_size
    throughput = {
        "train_seconds": round(train_seconds, 1),
        "steps": step,
        "crops": crops,
        "pixels": crops * config.crop_size**2,
        "crops_per_s": round(crops / train_seconds, 1),
        "pixels_per_s": round(crops * config.crop_size**2 / train_seconds),
        "tflops": round(flops * crops / train_seconds / 1e12, 2),
    }
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    if peak:
        throughput["fraction_of_bf16_peak"] = round(throughput["tflops"] / peak, 3)
    result = {
        **facts,
        **throughput,
        "flops_per_crop": flops,
        "best": best,
        "history": history,
        "config": asdict(config),
        "wall_seconds": round(time.time() - started_at, 1),
    }
    write_json_atomic(out / "history.json", result)
    print(
        f"{name}: {step} steps, {crops} crops ({throughput['pixels'] / 1e9:.2f} G pixels) in {train_seconds:.0f} s: "
        f"{throughput['crops_per_s']:.0f} crops/s, {throughput['pixels_per_s'] / 1e6:.3g} M pixels/s, "
        f"{throughput['tflops']} TFLOP/s"
        + (f" ({100 * throughput['fraction_of_bf16_peak']:.1f}% of the {peak:.0f} TFLOP/s bf16 peak)" if peak else "")
    )
    print(f"best: {best['weights']} weights, val PSNR {best['psnr']:.3f} dB -> {out / 'best.pth'}")
    if train_seconds < 60 * config.minutes:
        print(
            f"stopped at {train_seconds / 60:.1f} of {config.minutes:g} minutes: the same command with --resume goes on"
        )
    return result


def parse_args(argv: list[str] | None = None) -> GpuTrainConfig:
    """Every GpuTrainConfig field is a --flag with its help, default and choices."""
    return parse_flags(GpuTrainConfig, argv, __doc__)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        train_gpu(config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
