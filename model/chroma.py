"""Colour gain on clean training crops.

The photos that hold the denoiser's worst rows at light noise (coffee, astronaut, china, flower)
carry two to four times the colour detail of a typical training photo, and there most of the
network's excess error over CBM3D is in colour, not brightness: it smooths colour edges away.
Scaling a crop's colour (each pixel's difference from the mean of its channels) by a random
gain shows the network photos with more colour detail than its training set holds.
"""

from __future__ import annotations

import torch


def boost_chroma(crops: torch.Tensor, largest_gain: float, generator: torch.Generator) -> torch.Tensor:
    """`crops` (N, 3, H, W) in [0, 1], each with its colour scaled by a gain drawn uniformly from
    [1, largest_gain] about the mean of its channels, then clipped to [0, 1].

    `generator` is a CPU generator; every call draws one number per crop from it."""
    gains = 1 + (largest_gain - 1) * torch.rand(len(crops), generator=generator)
    gains = gains.to(crops.device, crops.dtype).reshape(-1, 1, 1, 1)
    grey = crops.mean(dim=1, keepdim=True)
    return (grey + gains * (crops - grey)).clamp(0, 1)
