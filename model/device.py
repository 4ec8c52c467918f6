"""Which device to compute on: the one asked for, else the fastest available."""

from __future__ import annotations

import torch


def pick_device(name: str = "") -> torch.device:
    """The requested device, or the fastest available: cuda, then mps, then cpu."""
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
