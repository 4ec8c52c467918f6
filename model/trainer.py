"""What one training process holds and does: the model, its optimizer and moving average, the
crops it draws, one optimisation step, and fp32 validation; `model/train.py` runs the schedule."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

import constants as C
from model import distributed
from model.checkpoint import save_checkpoint
from model.chroma import boost_chroma
from model.dead_leaves import dead_leaves_set
from model.fine_tune import encoder_levels
from model.jpeg import jpeg_round_trip
from model.losses import TrainingLoss
from model.metrics import psnr
from model.photo_crops import CropSampler, centre_box, most_textured, zoomed_out
from model.plots import plot_predictions
from model.precision import AMP_DTYPES, resolve_amp
from model.tasks import Denoise, Task
from model.train_config import TrainConfig
from model.unet import UNet

VAL_SIGMAS = (5 / 255, 15 / 255, 25 / 255, 50 / 255)  # a blind denoiser's: light noise, and the literature's
BATCH_CANDIDATES = (16, 32, 64, 128, 256)  # tried by --batch-size 0
SYNTHETIC_IMAGES, SYNTHETIC_SIDE = 64, 256  # the dead-leaves set of --synthetic-fraction


def validation_tasks(task: Task) -> list[Task]:
    """A blind denoiser is validated at each of VAL_SIGMAS in its range, any other task as it trains."""
    if not isinstance(task, Denoise):
        return [task]
    low, high = task.sigma
    levels = [s for s in VAL_SIGMAS if low <= s <= high] if high > low else [low]
    return [Denoise((s, s), 1.0, task.clip) for s in levels or [(low + high) / 2]]


def validation_set(
    photos: list[torch.Tensor], config: TrainConfig, device: torch.device, tasks: list[Task] | None = None
) -> list[tuple]:
    """(input, clean, sigma) per photo and validation task (the run's, or `tasks`): centre crops
    degraded once, with the project's seed whatever the run's, so runs with different seeds score
    the same inputs."""
    generator = torch.Generator().manual_seed(C.SEED)
    items = []
    for photo in photos:
        left, top, right, bottom = centre_box(photo.shape[-1], photo.shape[-2], config.eval_crop_size)
        clean = photo[:, top:bottom, left:right].float()[None] / 255
        for task in tasks or validation_tasks(config.make_task()):
            degraded, sigma = task.degrade_batch(clean, generator)
            items.append((degraded.to(device), clean.to(device), sigma.to(device)))
    return items


def parameter_groups(model: UNet, config: TrainConfig) -> list[dict]:
    """Adam's groups, each with its share of the learning rate: the decoder's, the encoder's and
    (if the network has them) the refine blocks', light noise's among them unless
    `light_lr_factor` gives those a group of their own (the light copy needs a rate the heavy
    blocks do not). A light-noise copy of the whole network (`light_network`) puts each of its
    layers in the group of the layer it copies. The first two are always there, in this order, so
    runs saved before refine blocks existed resume."""
    own_group = config.light_lr_factor > 0
    networks = [model, model.light_network] if model.config["light_network"] else [model]
    encoder = {id(p) for network in networks for level in encoder_levels(network) for p in level.parameters()}
    named = [(name.removeprefix("light_network."), p) for name, p in model.named_parameters()]
    light = {id(p) for name, p in named if own_group and name.startswith("light_refine.")}
    refine = {id(p) for name, p in named if name.startswith(("refine.", "light_refine."))} - light
    elsewhere = encoder | refine | light
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in elsewhere], "lr_scale": 1.0},
        {"params": [p for p in model.parameters() if id(p) in encoder], "lr_scale": config.encoder_lr_factor},
    ]
    for members, scale in ((refine, config.refine_lr_factor), (light, config.light_lr_factor)):
        if members:
            groups.append({"params": [p for p in model.parameters() if id(p) in members], "lr_scale": scale})
    return groups


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
        self.zoomed = None
        if config.zoom_out_fraction > 0:
            zoomed = zoomed_out(train_photos, config.zoom_out_factor, config.crop_size)
            self.zoomed = CropSampler(zoomed, config.crop_size, device, self.generator, config.sampling)
        self.jpeg_generator = torch.Generator().manual_seed(config.seed)  # apart, so crops and noise stay as without
        # apart too, and not on the seed itself, whose first draws would repeat the crops'
        self.texture_generator = torch.Generator(device).manual_seed(config.seed + 1)
        self.chroma_generator = torch.Generator().manual_seed(config.seed + 2)
        self.task = config.make_task()
        self.amp = resolve_amp(config.amp, device)
        self.layout = torch.channels_last if wanted(config.channels_last, device) else torch.contiguous_format
        self.model.to(device, memory_format=self.layout)
        self.optimizer = torch.optim.Adam(parameter_groups(model, config), lr=config.lr, fused=device.type == "cuda")
        # fp16 needs loss scaling so small gradients do not flush to zero; bf16 has fp32's range
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == "fp16")
        self.loss_function = TrainingLoss(
            config.loss,
            config.perceptual_weight,
            sigma_floor=config.loss_sigma_floor,
            colour_weight=config.colour_loss_weight,
        ).to(device)
        self.ema = [p.detach().clone() for p in model.parameters()] if config.ema_decay > 0 else None
        # gradients are averaged over processes in backward(); one process trains the model as is
        self.net = DistributedDataParallel(model) if self.world_size > 1 else model
        self.batch_size = config.batch_size

    def sample(self, batch: int) -> torch.Tensor:
        """Clean crops: `synthetic_fraction` of the batch from the dead-leaves set, the rest from photos
        (`zoom_out_fraction` of those from the photos downscaled by `zoom_out_factor`), each the most
        textured of `texture_candidates`, their colour scaled up to `chroma_gain`, `jpeg_fraction`
        of those JPEG-compressed."""
        synthetic = round(batch * self.config.synthetic_fraction) if self.synthetic else 0
        zoomed = round((batch - synthetic) * self.config.zoom_out_fraction) if self.zoomed else 0
        photos = self.textured_crops(self.sampler, batch - synthetic - zoomed)
        if zoomed:
            photos = torch.cat([photos, self.textured_crops(self.zoomed, zoomed)])
        if self.config.chroma_gain > 1:
            photos = boost_chroma(photos, self.config.chroma_gain, self.chroma_generator)
        if self.config.jpeg_fraction > 0:
            photos = jpeg_round_trip(photos, self.config.jpeg_fraction, self.config.jpeg_quality, self.jpeg_generator)
        if not synthetic:
            return photos
        return torch.cat([photos, self.synthetic.sample(synthetic)])

    def textured_crops(self, sampler: CropSampler, count: int) -> torch.Tensor:
        """`count` crops of `sampler`, each the most textured of `texture_candidates` drawn from the
        same sampler, so that a zoomed-out crop competes only with zoomed-out ones."""
        crops = sampler.sample(count)
        if self.config.texture_candidates > 1 and count:
            more = sampler.sample(count * (self.config.texture_candidates - 1), self.texture_generator)
            crops = most_textured(torch.cat([crops, more]).unflatten(0, (-1, count)))
        return crops

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
        scores moved with the weights' rounding by as much as a sitting gains. A blind denoiser's
        PSNR per noise level too (`val_psnr_by_sigma`, keys "5/255"...): the mean is ruled by
        heavy noise, and a light-noise gain or loss would hide in it."""
        saved = None
        if weights is not None:
            saved = [p.detach().clone() for p in self.model.parameters()]
            copy_into(list(self.model.parameters()), weights)
        self.model.eval()
        levels = sorted({float(sigma) for _, _, sigma in items})  # the same on every process
        mse = psnr_sum = input_sum = 0.0
        level_sums, level_counts = dict.fromkeys(levels, 0.0), dict.fromkeys(levels, 0)
        mine = items[self.rank :: self.world_size]
        for degraded, clean, sigma in mine:
            output = self.model(degraded.contiguous(memory_format=self.layout), sigma)
            mse += (output - clean).square().mean().item()
            score = psnr(output.clamp(0, 1), clean).item()
            psnr_sum += score
            level_sums[float(sigma)] += score
            level_counts[float(sigma)] += 1
            input_sum += psnr(degraded, clean).item()
        self.model.train()
        if saved is not None:
            copy_into(list(self.model.parameters()), saved)
        totals = distributed.all_reduce(
            [mse, psnr_sum, input_sum, len(mine), *level_sums.values(), *level_counts.values()]
        )
        mse, psnr_sum, input_sum, count = totals[:4]
        result = {"val_loss": mse / count, "val_psnr": psnr_sum / count, "val_psnr_noisy": input_sum / count}
        if len(levels) > 1:
            sums, counts = totals[4 : 4 + len(levels)], totals[4 + len(levels) :]
            by_level = zip(levels, sums, counts, strict=True)
            result["val_psnr_by_sigma"] = {f"{level * 255:.3g}/255": s / n for level, s, n in by_level}
        return result

    def state(self) -> dict:
        """Everything a resumed run needs besides the clock and the history."""
        return {
            "model": self.model.state_dict(),
            "ema": self.ema,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            "jpeg_generator": self.jpeg_generator.get_state(),
            "texture_generator": self.texture_generator.get_state(),
            "chroma_generator": self.chroma_generator.get_state(),
            "batch_size": self.batch_size,
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            copy_into(self.ema, state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"].cpu())
        if "jpeg_generator" in state:  # runs saved before --jpeg-fraction have none
            self.jpeg_generator.set_state(state["jpeg_generator"])
        if "texture_generator" in state:  # nor before --texture-candidates
            self.texture_generator.set_state(state["texture_generator"].cpu())
        if "chroma_generator" in state:  # nor before --chroma-gain
            self.chroma_generator.set_state(state["chroma_generator"])
        self.batch_size = state["batch_size"]


def copy_into(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for target, source in zip(targets, sources, strict=True):
            target.copy_(source)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_crop(model: UNet, crop: int, device: torch.device) -> float:
    """Forward + backward FLOPs of one training crop, counted by PyTorch's FLOP counter at sigma 0:
    a network with a light-noise copy of itself (`light_network`) runs one of the two there."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, crop, crop, device=device)
    with FlopCounterMode(display=False) as counter:
        model.eval()(x, torch.zeros(1, device=device)).sum().backward()  # eval: batch norm's statistics stay
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
