"""Restoration tasks as degradations applied on the fly to clean images.

One U-Net and `model/train.py` serve every task: a task turns a clean (3, H, W) image
(`degrade`, for the datasets of `model/dataset.py`) or a batch of crops on any device
(`degrade_batch`, for training and validation) into the network's input of the same size and
the noise level the network is told.

- Denoise: add Gaussian noise (the default task).
- SuperResolution: bicubic, antialiased downscaling by 2 or 4, then bicubic upscaling back to
  the original size, so the same U-Net shape applies; optional noise at low resolution.
- Colorize: the luma (ITU-R BT.601) repeated over three channels.

SuperResolution and Colorize tell the network a small noise level, `TASK_LEVEL`, rather than
0: the shipped denoiser has learnt to switch its units off at sigma 0 (it returns the input
unchanged, with gradients about 1,000 times smaller than at sigma 0.005), so a fine-tune told 0
cannot move. Told 0.01, its features are alive; training zeroes its head first
(`TrainConfig.reset_head`), so the fine-tune still starts from the input image.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)
TASK_LEVEL = 0.01  # the noise level SuperResolution and Colorize tell the network (see above)


def add_gaussian_noise(
    clean: torch.Tensor, sigma: float, generator: torch.Generator | None = None, clip: bool = False
) -> torch.Tensor:
    """clean + N(0, sigma^2), optionally clipped to [0, 1]."""
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device) * sigma
    noisy = clean + noise
    return noisy.clamp(0, 1) if clip else noisy


def as_batch(resize):
    """Let a function of a (N, C, H, W) batch also take one (C, H, W) image."""

    def wrapper(image: torch.Tensor, *args) -> torch.Tensor:
        return resize(image, *args) if image.ndim == 4 else resize(image[None], *args)[0]

    return wrapper


@as_batch
def downscale(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic, antialiased downscaling of an image (or a batch) by an integer factor."""
    size = (max(1, image.shape[-2] // scale), max(1, image.shape[-1] // scale))
    return F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


@as_batch
def upscale(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic upscaling of an image (or a batch) to `size` (the usual baseline of super-resolution)."""
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def to_gray(image: torch.Tensor) -> torch.Tensor:
    """Luma of an RGB image (3, H, W) or batch (N, 3, H, W), repeated over the 3 channels."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * weights).sum(-3, keepdim=True).expand(*image.shape).contiguous()


def check_noise_levels(low: float, high: float, power: float) -> None:
    """Noise levels are on the [0, 1] pixel scale, where 25/255 is 0.098: a 25 is a slip, not a level."""
    if not 0 <= low <= high <= 1:
        raise ValueError(f"sigma must be within [0, 1] on the [0, 1] pixel scale (low <= high), got {(low, high)}")
    if power <= 0:
        raise ValueError(f"sigma_power must be > 0, got {power}")


@dataclass
class Denoise:
    sigma: tuple[float, float] = (0.5, 0.5)
    sigma_power: float = 1.0  # > 1 draws low noise levels more often
    clip: bool = False

    def __post_init__(self) -> None:
        check_noise_levels(*self.sigma, self.sigma_power)

    def degrade(
        self, clean: torch.Tensor, rng: random.Random, generator: torch.Generator
    ) -> tuple[torch.Tensor, float]:
        sigma = self.level(rng.random())
        return add_gaussian_noise(clean, sigma, generator, self.clip), sigma

    def level(self, uniform: float | torch.Tensor) -> float | torch.Tensor:
        """The noise level for a uniform draw in [0, 1]: low + (high - low) * u ** sigma_power."""
        low, high = self.sigma
        return low + (high - low) * uniform**self.sigma_power

    def degrade_batch(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise of a level drawn per crop, on the crops' device; returns (noisy, sigma per crop)."""
        sigma = self.level(torch.rand(len(clean), device=clean.device, generator=generator))
        noise = torch.randn(clean.shape, device=clean.device, generator=generator)
        noisy = clean + noise * sigma[:, None, None, None]
        return (noisy.clamp(0, 1) if self.clip else noisy), sigma


@dataclass
class SuperResolution:
    scale: int = 2
    noise_sigma: float = 0.0  # Gaussian noise added to the low-resolution image
    level: float = TASK_LEVEL  # the noise level the network is told, at least noise_sigma

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4, 8):
            raise ValueError(f"scale must be 2, 3, 4 or 8, got {self.scale}")

    def degrade(
        self, clean: torch.Tensor, rng: random.Random, generator: torch.Generator
    ) -> tuple[torch.Tensor, float]:
        return self.degrade_batch(clean[None], generator)[0][0], max(self.noise_sigma, self.level)

    def degrade_batch(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        low = downscale(clean, self.scale)
        if self.noise_sigma > 0:
            low = add_gaussian_noise(low, self.noise_sigma, generator)
        level = torch.full((len(clean),), max(self.noise_sigma, self.level), device=clean.device)
        return upscale(low, tuple(clean.shape[-2:])), level


@dataclass
class Colorize:
    level: float = TASK_LEVEL  # the noise level the network is told

    def degrade(
        self, clean: torch.Tensor, rng: random.Random, generator: torch.Generator
    ) -> tuple[torch.Tensor, float]:
        return to_gray(clean), self.level

    def degrade_batch(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return to_gray(clean), torch.full((len(clean),), self.level, device=clean.device)


Task = Denoise | SuperResolution | Colorize
