"""Which device to compute on (the one asked for, else the fastest available), and the CPU
allocator setting that makes repeated large tensors cheap."""

from __future__ import annotations

import ctypes
import functools

import torch

GLIBC_M_TRIM_THRESHOLD, GLIBC_M_MMAP_THRESHOLD = -1, -3
KEEP_BYTES = 2**30


def pick_device(name: str = "") -> torch.device:
    """The requested device, or the fastest available: cuda, then mps, then cpu."""
    if name:
        return torch.device(name)
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
