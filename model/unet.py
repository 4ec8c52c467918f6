"""The U-Net denoiser.

`UNet()` with default arguments is the original project's network, parameter for parameter
(31,037,763 weights) and with the same state-dict names, so its checkpoints load unchanged.
Two options turn it into a modern blind denoiser (FFDNet / DRUNet style):
`noise_level_input` feeds the noise level as an extra constant channel, and `residual`
makes the network predict the noise to subtract instead of the whole image. Three more
(`block`, `downsample`, `bias`) build a DRUNet-like variant: residual blocks, strided
convolutions down, no biases (`DRUNET_LIKE`); `BLIND_DENOISER` is the shipped network's trunk.
`refine_blocks` adds residual blocks at full resolution before the output layer, each starting
as the identity, so they can be grown onto a trained network without changing what it computes.
`light_refine` gives light noise its own copy of those blocks, faded out by `light_gate` as
sigma rises, so training it for light noise leaves heavier noise's output as it was;
`light_blocks` lets that copy grow deeper than the blocks it was copied from. `light_network`
goes further: light noise gets its own copy of the whole network, blended by the same gate, so
the trunk too can specialise for light noise without moving the output at heavy noise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.config_flags import option


def pad_bottom_right(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Pad (..., H, W) at the bottom and right by reflection; images too small to reflect get edge copies."""
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


class ConvBlock(nn.Module):
    """(3x3 conv -> batch norm -> ReLU) twice; without batch norm the convs get a bias (if `bias`)."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True, bias: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for channels in (in_channels, out_channels):
            layers.append(nn.Conv2d(channels, out_channels, 3, padding=1, bias=bias and not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ResidualBlock(nn.Module):
    """DRUNet's block: a 3x3 conv to the new width (if it changes), then x + conv(ReLU(conv(x)))."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        same = in_channels == out_channels
        self.project = nn.Identity() if same else nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)
        self.body = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        return x + self.body(x)


def identity_block(channels: int, bias: bool) -> ResidualBlock:
    """A residual block whose last convolution is zero: it starts as the identity (and its first
    convolution gets gradients once the last one has moved)."""
    block = ResidualBlock(channels, channels, bias)
    last = block.body[-1]
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)
    return block


def make_block(in_channels: int, out_channels: int, config: UNetConfig) -> nn.Module:
    if config.block == "residual":
        return ResidualBlock(in_channels, out_channels, config.bias)
    return ConvBlock(in_channels, out_channels, config.batch_norm, config.bias)


class Encoder(nn.Module):
    """Halve the resolution (max-pooling, or a 2x2 convolution of stride 2), then widen."""

    def __init__(self, in_channels: int, out_channels: int, config: UNetConfig) -> None:
        super().__init__()
        if config.downsample == "maxpool":
            self.encoder = nn.Sequential(nn.MaxPool2d(2), make_block(in_channels, out_channels, config))
        else:
            down = nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=2, bias=config.bias)
            self.encoder = nn.Sequential(down, make_block(out_channels, out_channels, config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class Decoder(nn.Module):
    """Double the resolution, concatenate the skip connection, then narrow."""

    def __init__(self, in_channels: int, out_channels: int, config: UNetConfig) -> None:
        super().__init__()
        self.conv_trans = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2, bias=config.bias)
        self.conv_block = make_block(2 * out_channels, out_channels, config)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv_block(torch.cat([skip, self.conv_trans(x)], dim=1))


@dataclass
class UNetConfig:
    """Everything that shapes the network; the defaults are the original project's U-Net.
    Checkpoints store it as `model_config`, training runs nest it in their `TrainConfig`."""

    in_channels: int = option(3, "image channels in (3: RGB)")
    out_channels: int = option(3, "image channels out")
    base_channels: int = option(64, "width of the first level; each level below doubles it")
    depth: int = option(4, "number of down/up-sampling steps")
    noise_level_input: bool = option(
        False, "take the noise sigma as an extra constant input channel, so one network serves every level"
    )
    residual: bool = option(False, "predict the noise and return input - noise (needs in == out channels)")
    batch_norm: bool = option(True, "batch norm after each conv (the original's); off, train and eval mode agree")
    final_activation: str = option("none", "bound the output with a sigmoid (not with residual)", ("none", "sigmoid"))
    block: str = option(
        "double-conv", "per level: two 3x3 conv + ReLU, or a DRUNet-style residual block", ("double-conv", "residual")
    )
    downsample: str = option(
        "maxpool", "halve the resolution by max-pooling or a strided 2x2 conv", ("maxpool", "strided-conv")
    )
    bias: bool = option(True, "convolutions have biases (never beside batch norm); DRUNet has none")
    refine_blocks: int = option(
        0,
        "residual blocks at full resolution before the output layer, each starting as the identity "
        "(full resolution holds 0.6% of the shipped network's weights; light noise is told from detail there)",
    )

    light_refine: bool = option(
        False,
        "light noise gets its own refine blocks: their output is blended in by light_gate(sigma), "
        "1 up to light_sigma and 0 from twice it (needs noise_level_input and refine_blocks)",
    )
    light_sigma: float = option(
        25 / 255, "with light_refine or light_network: the highest sigma that uses its light copy alone"
    )
    light_blocks: int = option(
        0, "with light_refine: how many light-noise blocks (0: as many as refine_blocks, the copy's count)"
    )
    light_network: bool = option(
        False,
        "light noise gets its own copy of the whole network, its output blended in by light_gate(sigma); "
        "only sigmas between light_sigma and twice it run both (needs noise_level_input)",
    )

    def __post_init__(self) -> None:
        if self.light_refine and not (self.noise_level_input and self.refine_blocks and self.light_sigma > 0):
            raise ValueError("light_refine needs noise_level_input, refine_blocks >= 1 and light_sigma > 0")
        if self.light_blocks < 0 or (self.light_blocks and not self.light_refine):
            raise ValueError(f"light_blocks needs light_refine and must be >= 0, got {self.light_blocks}")
        if self.light_network and not (self.noise_level_input and self.light_sigma > 0):
            raise ValueError("light_network needs noise_level_input and light_sigma > 0")
        if self.depth < 1 or self.base_channels < 1 or self.refine_blocks < 0:
            raise ValueError(
                f"depth and base_channels must be >= 1 and refine_blocks >= 0, "
                f"got {self.depth}, {self.base_channels}, {self.refine_blocks}"
            )
        if self.residual and self.in_channels != self.out_channels:
            raise ValueError("residual=True needs in_channels == out_channels")
        if self.final_activation not in ("none", "sigmoid") or (self.residual and self.final_activation != "none"):
            raise ValueError(
                f"final_activation must be 'none' or 'sigmoid' (not residual), got {self.final_activation!r}"
            )
        if self.block not in ("double-conv", "residual") or self.downsample not in ("maxpool", "strided-conv"):
            raise ValueError(f"unknown block {self.block!r} or downsample {self.downsample!r}")
        if self.block == "residual" and self.batch_norm:
            raise ValueError("block='residual' has no batch norm: set batch_norm=False")


# the shipped checkpoint's trunk (the file adds 2 refine blocks), and the study's DRUNet-like
# alternative of the same width
BLIND_DENOISER = UNetConfig(base_channels=32, noise_level_input=True, residual=True, batch_norm=False)
DRUNET_LIKE = dataclasses.replace(BLIND_DENOISER, block="residual", downsample="strided-conv", bias=False)


def light_gate(sigma: torch.Tensor, light_sigma: float) -> torch.Tensor:
    """The weight of the light-noise copy (blocks or network): 1 up to `light_sigma`, falling linearly to 0
    at twice it. Light noise is told from detail at full resolution, heavy noise needs the
    whole trunk; a hard split by sigma lets each be trained without costing the other."""
    return (2 - sigma / light_sigma).clamp(0, 1)


class UNet(nn.Module):
    """U-Net for image-to-image restoration on [0, 1] RGB tensors (N, C, H, W).

    Built from a `UNetConfig`, or from its fields as keyword arguments (`UNet(base_channels=32,
    noise_level_input=True)`, `UNet(**checkpoint["model_config"])`); `model.config` holds them
    as a dict. With `noise_level_input`, call `model(x, sigma)`.

    Any height and width work: the input is padded to a multiple of 2**depth and the
    output cropped back to the input's size.
    """

    def __init__(self, config: UNetConfig | None = None, **settings) -> None:
        super().__init__()
        config = dataclasses.replace(config or UNetConfig(), **settings)
        self.config = dataclasses.asdict(config)
        self.depth = config.depth
        self.noise_level_input = config.noise_level_input
        self.residual = config.residual
        self.final_activation = config.final_activation
        widths = [config.base_channels * 2**level for level in range(config.depth + 1)]
        self.in_conv = make_block(config.in_channels + int(config.noise_level_input), widths[0], config)
        for level in range(config.depth):
            setattr(self, f"enc_{level + 1}", Encoder(widths[level], widths[level + 1], config))
        for level in range(config.depth):
            wide, narrow = widths[config.depth - level], widths[config.depth - level - 1]
            setattr(self, f"dec_{level + 1}", Decoder(wide, narrow, config))
        if config.refine_blocks:
            self.refine = nn.Sequential(*(identity_block(widths[0], config.bias) for _ in range(config.refine_blocks)))
        if config.light_refine:
            light_blocks = config.light_blocks or config.refine_blocks
            self.light_refine = nn.Sequential(*(identity_block(widths[0], config.bias) for _ in range(light_blocks)))
        self.out_conv = nn.Conv2d(widths[0], config.out_channels, kernel_size=1, bias=config.bias)
        if config.light_network:
            self.light_network = UNet(dataclasses.replace(config, light_network=False))

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        """Denoise `x`; `sigma` (a float, or one value per image) is required with noise_level_input."""
        if x.ndim != 4:
            raise ValueError(f"expected a batch (N, C, H, W), got shape {tuple(x.shape)}")
        if self.noise_level_input:
            if sigma is None:
                raise ValueError("this UNet takes the noise level: call model(x, sigma)")
            sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        if not self.config["light_network"]:
            return self.own_forward(x, sigma)
        sigma = sigma.expand(x.shape[0], 1, 1, 1)
        gate = light_gate(sigma, self.config["light_sigma"])
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():  # an export traces both, for any sigma
            heavy = self.own_forward(x, sigma)
            return heavy + gate * (self.light_network(x, sigma) - heavy)
        # each network runs on the images the gate gives a share to, and no other
        out = None
        for network, weight in ((self.own_forward, 1 - gate), (self.light_network, gate)):
            keep = (weight.flatten() > 0).nonzero().flatten()
            if len(keep):
                part = weight[keep] * network(x[keep], sigma[keep])
                out = part.new_zeros((x.shape[0], *part.shape[1:])) if out is None else out
                out = out.index_add(0, keep, part)
        return out

    def own_forward(self, x: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        """This network's output without its light copy; `sigma` is (N, 1, 1, 1) or None."""
        height, width = x.shape[-2:]
        net_in = x
        if self.noise_level_input:
            net_in = torch.cat([x, sigma.expand(x.shape[0], 1, height, width)], dim=1)
        multiple = 2**self.depth
        net_in = pad_bottom_right(net_in, -height % multiple, -width % multiple)

        skips = [self.in_conv(net_in)]
        for level in range(1, self.depth + 1):
            skips.append(getattr(self, f"enc_{level}")(skips[-1]))
        out = skips.pop()
        for level in range(1, self.depth + 1):
            out = getattr(self, f"dec_{level}")(out, skips.pop())
        if self.config["refine_blocks"]:
            features, out = out, self.refine(out)
            if self.config["light_refine"]:
                gate = light_gate(sigma, self.config["light_sigma"])
                out = out + gate * (self.light_refine(features) - out)
        out = self.out_conv(out)[..., :height, :width]
        if self.final_activation == "sigmoid":
            return torch.sigmoid(out)
        return x - out if self.residual else out
