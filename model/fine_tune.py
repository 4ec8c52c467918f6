"""Fine-tuning a trained network: a fresh output layer and gradual unfreezing for a new task,
and refine blocks grown onto it for more capacity at full resolution (or for light noise alone)."""

from __future__ import annotations

import dataclasses

from torch import nn

from model.unet import UNet, UNetConfig

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


def set_trainable(model: UNet, epoch: int, freeze_epochs: int, only: str = "") -> int:
    """Freeze the encoder for `freeze_epochs` epochs, then unfreeze one level per epoch, deepest
    first (gradual unfreezing: the generic low-level features change last). With `only` ("refine"
    or "light") only those blocks train: the refine blocks come after the whole trunk, so a step
    then runs no backward pass through it; "light" is the light-noise copy, the whole network's
    (`light_network`) if it has one, else the refine blocks'. Returns the number of frozen encoder levels."""
    levels = encoder_levels(model)
    if only == "light":
        only = "light_network" if model.config["light_network"] else "light_refine"
    if only:
        if not isinstance(getattr(model, only, None), nn.Module):
            raise ValueError(f"training {only} only: this network has no {only} blocks (grow them first)")
        model.requires_grad_(False)
        getattr(model, only).requires_grad_(True)
        return len(levels)
    unfrozen = max(0, epoch - freeze_epochs) if freeze_epochs > 0 else len(levels)
    for index, level in enumerate(reversed(levels)):
        level.requires_grad_(index < unfrozen)
    return max(0, len(levels) - unfrozen)


def add_refine_blocks(model: UNet, blocks: int) -> UNet:
    """`model` with `blocks` more refine blocks (`UNetConfig.refine_blocks`). They start as the
    identity, so the grown network computes exactly what `model` did and training only adds."""
    return grown(model, "refine.", refine_blocks=model.config["refine_blocks"] + blocks)


def add_light_refine(model: UNet, light_sigma: float) -> UNet:
    """`model` with light-noise refine blocks (`UNetConfig.light_refine`), copies of its refine
    blocks: the grown network computes exactly what `model` did, at every sigma."""
    if model.config["light_refine"]:
        raise ValueError("this network has light-noise refine blocks already")
    light = grown(model, "light_refine.", light_refine=True, light_sigma=light_sigma)
    light.light_refine.load_state_dict(light.refine.state_dict())
    return light


def add_light_blocks(model: UNet, blocks: int) -> UNet:
    """`model` with `blocks` more light-noise blocks after its light copy (`UNetConfig.light_blocks`),
    each starting as the identity: more capacity for light noise alone, same output at first."""
    if not model.config["light_refine"]:
        raise ValueError("this network has no light-noise refine blocks to grow (add_light_refine first)")
    return grown(model, "light_refine.", light_blocks=len(model.light_refine) + blocks)


def add_light_network(model: UNet) -> UNet:
    """`model` with a copy of itself for light noise (`UNetConfig.light_network`): the grown network
    computes exactly what `model` did, and training the copy alone (`--light-only`) changes its
    output only below twice light_sigma, with the trunk free to specialise there too."""
    if model.config["light_network"]:
        raise ValueError("this network has a light-noise copy of itself already")
    light = grown(model, "light_network.", light_network=True)
    light.light_network.load_state_dict(model.state_dict())
    return light


def grown(model: UNet, new_prefix: str, **settings) -> UNet:
    """A network with `settings` changed, holding `model`'s weights; only names under `new_prefix` are new."""
    bigger = UNet(dataclasses.replace(UNetConfig(**model.config), **settings))
    bigger.to(next(model.parameters()).device)
    missing, unexpected = bigger.load_state_dict(model.state_dict(), strict=False)
    if unexpected or not all(key.startswith(new_prefix) for key in missing):
        raise ValueError(f"cannot grow this network: missing {missing}, unexpected {unexpected}")
    return bigger
