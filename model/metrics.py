"""Image quality metrics on (N, C, H, W) or (C, H, W) tensors with data range 1.

PSNR and SSIM follow scikit-image's definitions (SSIM as in Wang et al. 2004: 11x11 Gaussian
window, sigma 1.5, K1 0.01, K2 0.03, population covariance, averaged over channels), and the
tests check agreement with scikit-image. Both return one value per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _batch(x: torch.Tensor) -> torch.Tensor:
    return (x[None] if x.ndim == 3 else x).double()


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image (RGB, averaged over all channels)."""
    prediction, target = _batch(prediction), _batch(target)
    mse = (prediction - target).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity, per image; the 5-pixel border, where the window would leave
    the image, is excluded as scikit-image does."""
    x, y = _batch(prediction), _batch(target)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {tuple(x.shape[-2:])}")
    channels = x.shape[1]
    kernel = _gaussian_window().to(x.device)
    window_h = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    window_w = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(image, window_h, groups=channels), window_w, groups=channels)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov_xy = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1).float()


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma Y of ITU-R BT.601 in [16/255, 235/255], as super-resolution papers score it (MATLAB's rgb2ycbcr)."""
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype, device=x.device).view(3, 1, 1) / 255
    return (x * weights).sum(dim=-3, keepdim=True) + 16 / 255


def psnr_y(prediction: torch.Tensor, target: torch.Tensor, shave: int = 0) -> torch.Tensor:
    """PSNR on the Y channel with `shave` border pixels left out (the SR convention: shave = scale)."""
    prediction, target = rgb_to_y(_batch(prediction)), rgb_to_y(_batch(target))
    if shave:
        prediction, target = (t[..., shave:-shave, shave:-shave] for t in (prediction, target))
    return psnr(prediction, target)
