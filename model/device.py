"""Which device to compute on (the one asked for, else the fastest available), and the CPU
allocator setting that makes repeated large tensors cheap."""

from __future__ import annotations

import ctypes
import functools

import torch

GLIBC_M_TRIM_THRESHOLD, GLIBC_M_MMAP_THRESHOLD = -1, -3
KEEP_BYTES = 2**30


def pick_device(name: str = "") -> torch.device:
    """The requested device, or the fastest available: cuda, then mps, then cpu. A requested
    device that is unknown or not on this machine is a ValueError that says so, before any
    work (torch would fail later, e.g. inside loading a checkpoint, with a misleading message)."""
    if name:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
        count = torch.cuda.device_count() if device.type == "cuda" else 0
        if device.type == "cuda" and not count:
            raise ValueError(f"device {name!r}: CUDA is not available here (no NVIDIA GPU, or a CPU-only torch)")
        if device.type == "cuda" and (device.index or 0) >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r}: MPS (Apple GPU) is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the system.

    Tiled inference allocates the same large activations for every tile; by default glibc
    hands each one back (munmap) and faults fresh pages in for the next, which cost a third
    of the CPU time of `denoise` on a 2-core machine. Returns whether the setting took effect
    (False where the C library is not glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(
            libc.mallopt(GLIBC_M_MMAP_THRESHOLD, KEEP_BYTES) and libc.mallopt(GLIBC_M_TRIM_THRESHOLD, KEEP_BYTES)
        )
    except (OSError, AttributeError):
        return False
