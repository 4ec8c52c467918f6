"""Training losses: pixel losses (one noise-weighted), and an optional VGG perceptual term for super-resolution.

The VGG16 ImageNet weights cannot be downloaded here, so the perceptual term looks for them in
torch's hub cache and fails with a clear message when they are missing; any feature extractor
(a module mapping images to features) can be passed instead.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.metrics import psnr

VGG_FILE = "vgg16-397923af.pth"  # torchvision's VGG16_Weights.IMAGENET1K_V1
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def charbonnier_loss(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """A smooth L1: quadratic near zero, linear beyond eps (robust to outliers, stable gradients)."""
    return torch.sqrt((output - target) ** 2 + eps**2).mean()


def psnr_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Minus the mean PSNR (dB, data range 1) of the images of a batch: each image counts the same
    whatever its noise level, where in an MSE the noisiest ones, whose errors are largest, rule."""
    return -psnr(output, target).mean()


def squared_error(output: torch.Tensor, target: torch.Tensor, colour_weight: float = 1.0) -> torch.Tensor:
    """Each pixel's squared error, the mean over its channels, with the colour part weighing
    `colour_weight` times the grey part.

    An RGB error splits into a grey part (its mean over the channels, on all three alike) and a
    colour part (the rest). Light noise's excess error over CBM3D lies almost all in colour, and
    a weight above 1 turns the steps toward it. The sum is scaled so that an error of the same
    size on every channel, independent, costs the same whatever the weight; at 1 it is the plain
    squared error the PSNR is judged by."""
    error = output - target
    if colour_weight == 1:
        return error.pow(2)
    channels = error.shape[1]
    grey = error.mean(dim=1, keepdim=True)
    colour = (error - grey).pow(2).sum(dim=1, keepdim=True)
    return (channels * grey.pow(2) + colour_weight * colour) / (1 + (channels - 1) * colour_weight)


def mse(output: torch.Tensor, target: torch.Tensor, colour_weight: float = 1.0) -> torch.Tensor:
    """The mean squared error, its colour part weighed by `colour_weight` (see squared_error)."""
    return squared_error(output, target, colour_weight).mean()


PIXEL_LOSSES = {"mse": mse, "l1": F.l1_loss, "charbonnier": charbonnier_loss, "psnr": psnr_loss}
SIGMA_FLOOR = 2 / 255  # below it a crop's weight stops growing (sigma -> 0 would weigh it without bound)


def noise_weighted_mse(
    output: torch.Tensor,
    target: torch.Tensor,
    sigma: torch.Tensor,
    floor: float = SIGMA_FLOOR,
    colour_weight: float = 1.0,
) -> torch.Tensor:
    """Each crop's squared error divided by its noise variance (sigma floored at `floor`).

    It is the share of the noise power left in the output, so a crop at 5/255 counts as much as
    one at 50/255; in a plain MSE the latter's error is ~100 times larger and rules every step.
    A higher floor is a middle way: crops up to it weigh the same, as in a plain MSE, and only
    the heavier ones are scaled down. `colour_weight` as in squared_error."""
    per_crop = squared_error(output, target, colour_weight).mean(dim=tuple(range(1, output.ndim)))
    return (per_crop / sigma.clamp(min=floor) ** 2).mean()


NOISE_WEIGHTED_LOSSES = {"mse-per-variance": noise_weighted_mse}  # they take each crop's sigma too
COLOUR_WEIGHTED_LOSSES = ("mse", "mse-per-variance")  # they take a colour_weight
LOSSES = {**PIXEL_LOSSES, **NOISE_WEIGHTED_LOSSES}


def vgg_features(weights: str | Path | None = None) -> nn.Module:
    """VGG16 up to relu3_3 with ImageNet weights from `weights` (default: torch's hub cache)."""
    import torchvision

    path = Path(weights) if weights else Path(torch.hub.get_dir()) / "checkpoints" / VGG_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: VGG16 ImageNet weights not found, and they cannot be downloaded here; copy {VGG_FILE} "
            "there, or train without the perceptual term (--perceptual-weight 0)"
        )
    vgg = torchvision.models.vgg16()
    vgg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return vgg.features[:16]


class PerceptualLoss(nn.Module):
    """Mean squared distance between features of the output and of the target (frozen extractor)."""

    def __init__(self, features: nn.Module | None = None) -> None:
        super().__init__()
        self.features = (features if features is not None else vgg_features()).eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        normalize = lambda x: (x - self.mean) / self.std  # noqa: E731
        return F.mse_loss(self.features(normalize(output)), self.features(normalize(target)))


class TrainingLoss(nn.Module):
    """A pixel loss plus `perceptual_weight` times the perceptual loss (if the weight is > 0)."""

    def __init__(
        self,
        pixel: str = "mse",
        perceptual_weight: float = 0.0,
        features: nn.Module | None = None,
        sigma_floor: float = SIGMA_FLOOR,
        colour_weight: float = 1.0,
    ):
        super().__init__()
        if pixel not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {pixel!r}")
        if colour_weight != 1 and pixel not in COLOUR_WEIGHTED_LOSSES:
            raise ValueError(f"a colour weight needs one of {list(COLOUR_WEIGHTED_LOSSES)}, got loss {pixel!r}")
        self.weighs_noise = pixel in NOISE_WEIGHTED_LOSSES
        self.pixel = LOSSES[pixel]
        if self.weighs_noise:
            self.pixel = partial(self.pixel, floor=sigma_floor)
        if colour_weight != 1:
            self.pixel = partial(self.pixel, colour_weight=colour_weight)
        self.perceptual_weight = perceptual_weight
        self.perceptual = PerceptualLoss(features) if perceptual_weight > 0 else None

    def forward(self, output: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """`sigma` (one level per image) is needed by the noise-weighted losses only."""
        loss = self.pixel(output, target, sigma) if self.weighs_noise else self.pixel(output, target)
        if self.perceptual is not None:
            loss = loss + self.perceptual_weight * self.perceptual(output, target)
        return loss
