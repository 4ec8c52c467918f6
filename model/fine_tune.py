"""Fine-tuning a trained network for a new task: a fresh output layer and gradual unfreezing."""

from __future__ import annotations

from torch import nn

from model.unet import UNet

RESET_HEAD_CHOICES = ("auto", "yes", "no")


def encoder_levels(model: UNet) -> list[nn.Module]:
    """The encoder, shallowest level first: in_conv, enc_1, ..., enc_depth."""
    return [model.in_conv] + [getattr(model, f"enc_{level}") for level in range(1, model.depth + 1)]


def wants_new_head(config, model: UNet) -> bool:
    """Whether to zero the head of --init weights (`config` is a TrainConfig): asked for, or a
    residual network set a new task.

    A noise-level-aware denoiser returns an image without noise unchanged with its units off,
    so its gradients there are about 1,000 times smaller than at sigma 0.005 and a fine-tune
    for sharper or coloured output cannot leave the identity (measured: 180 steps of x2
    super-resolution ended within 0.001 dB of bicubic). A zero head keeps the identity as the
    starting point, while the trunk's live features (the tasks tell the network sigma 0.01,
    `model/tasks.py`) give the head a gradient from the first step.
    """
    if config.reset_head == "auto":
        return bool(config.init) and config.task != "denoise" and model.residual
    return bool(config.init) and config.reset_head == "yes"


def reset_head(model: UNet) -> None:
    """Zero the output convolution: a residual U-Net then returns its input unchanged."""
    nn.init.zeros_(model.out_conv.weight)
    if model.out_conv.bias is not None:  # DRUNet-like networks have none
        nn.init.zeros_(model.out_conv.bias)


def set_trainable(model: UNet, epoch: int, freeze_epochs: int) -> int:
    """Freeze the encoder for `freeze_epochs` epochs, then unfreeze one level per epoch, deepest
    first (gradual unfreezing: the generic low-level features change last). Returns the number
    of frozen levels."""
    levels = encoder_levels(model)
    unfrozen = max(0, epoch - freeze_epochs) if freeze_epochs > 0 else len(levels)
    for index, level in enumerate(reversed(levels)):
        level.requires_grad_(index < unfrozen)
    return max(0, len(levels) - unfrozen)
