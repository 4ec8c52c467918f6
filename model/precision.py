"""Which floating-point precision to compute in, chosen from what the hardware does fast.

bf16 halves the time of a step only where the hardware multiplies it natively; elsewhere it
is emulated: on an AVX2-only CPU benchmarks/train_speed.py measured 1.3 GFLOP/s for a bf16
matmul against 160 GFLOP/s in fp32.
"""

from __future__ import annotations

import warnings

import torch

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = (*AMP_DTYPES, "auto")


def native_bf16(device: torch.device) -> bool:
    """Whether the device multiplies bfloat16 in hardware (CUDA from Ampere; CPUs with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_amp(amp: str, device: torch.device) -> str:
    """The precision to train in: `auto` means bf16 where the hardware has it, else fp16 on
    CUDA and full precision elsewhere; an explicit choice is kept."""
    if amp == "auto":
        return "bf16" if native_bf16(device) else "fp16" if device.type == "cuda" else "none"
    if amp == "bf16":
        warn_if_emulated_bf16(device)
    return amp


def warn_if_emulated_bf16(device: torch.device) -> None:
    if not native_bf16(device):
        warnings.warn(f"bf16 is emulated on this {device.type} and much slower than fp32", stacklevel=3)
