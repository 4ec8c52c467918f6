"""JPEG round trips of clean training crops.

Most photos people denoise were JPEGs before the noise came on top, and so are the photos the
denoiser is judged on: their content carries the 8x8 block structure that compression leaves.
A network trained on lossless photos alone takes that structure for noise and smooths it away,
where CBM3D's 8x8 transform keeps it. Compressing a share of the clean crops (the target too,
before noise is added) shows the network what such photos look like.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

BEST_QUALITY = 95  # the top of the quality range: above it Pillow's JPEG is nearly lossless


def compress(pixels: np.ndarray, quality: int) -> np.ndarray:
    """An (H, W, 3) uint8 image as it comes back from a JPEG at `quality` (Pillow's 4:2:0 chroma)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.array(Image.open(buffer).convert("RGB"))  # a copy: torch needs it writable


def jpeg_round_trip(
    crops: torch.Tensor, fraction: float, lowest_quality: int, generator: torch.Generator
) -> torch.Tensor:
    """`crops` (N, 3, H, W) in [0, 1], with a `fraction` of them JPEG-compressed and decoded, each at
    a quality drawn uniformly from [lowest_quality, BEST_QUALITY] (Pillow's 4:2:0 chroma).

    `generator` is a CPU generator; every call draws the same amount from it, whatever is chosen."""
    chosen = torch.rand(len(crops), generator=generator) < fraction
    qualities = torch.randint(lowest_quality, BEST_QUALITY + 1, (len(crops),), generator=generator)
    if not chosen.any():
        return crops
    out = crops.clone()
    on_device = chosen.to(crops.device)
    pixels = crops[on_device].clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = np.stack([compress(p, q) for p, q in zip(pixels, qualities[chosen].tolist(), strict=True)])
    out[on_device] = torch.from_numpy(decoded).permute(0, 3, 1, 2).to(crops.device, crops.dtype) / 255
    return out
