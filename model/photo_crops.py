"""Training photos held as uint8 tensors (in memory, or on the GPU) and random crops cut from them.

The trainer (`model/train.py`) decodes every photo once, keeps it as uint8, and draws crops,
flips and rotations with a `torch.Generator` on the photos' device: no DataLoader, no worker
processes, nothing that waits on Python between steps, and the same draws on every machine.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from model.pixels import pixel_array, rescale, three_channels
from model.unet import pad_bottom_right


def read_photo(path: Path) -> torch.Tensor:
    """One photo as a (3, H, W) uint8 tensor, upright (EXIF orientation applied): decoded as the
    denoise CLI's Pillow path decodes it (`model/pixels.py`), so 16-bit and float gray photos are
    scaled to 8 bits, not clipped at 255 as Pillow's own conversion would (a white image)."""
    with Image.open(path) as image:
        pixels = pixel_array(ImageOps.exif_transpose(image))
    if pixels.dtype != np.uint8:
        pixels = rescale(pixels, np.uint8)
    return torch.from_numpy(np.array(three_channels(pixels))).permute(2, 0, 1)  # a copy: torch needs it writable


def read_photos(paths: list[Path]) -> tuple[list[torch.Tensor], list[Path]]:
    """(photos, their paths) of the files that decode, on all CPU cores; each one that does not
    is named in a warning and left out, so one broken file does not stop a run."""

    def read(path: Path) -> torch.Tensor | None:
        try:
            return read_photo(path)
        except (OSError, ValueError) as error:
            warnings.warn(f"skipping {path}: {error}", stacklevel=3)
            return None

    with ThreadPoolExecutor() as pool:
        photos = list(pool.map(read, paths))
    kept = [(photo, path) for photo, path in zip(photos, paths, strict=True) if photo is not None]
    if not kept:
        raise ValueError(f"none of the {len(paths)} images could be read")
    return [photo for photo, _ in kept], [path for _, path in kept]


def tile_origins(length: int, side: int, stride: int) -> list[int]:
    """Tile starts along one axis: every `stride`, plus one flush with the end."""
    if length <= side:
        return [0]
    starts = list(range(0, length - side + 1, stride))
    return starts if starts[-1] == length - side else [*starts, length - side]


def centre_box(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the central side x side part of a photo (all of it along a
    shorter axis): the validation crop, here and in the pack (utils/make_pack.py)."""
    left, top = max(0, (width - side) // 2), max(0, (height - side) // 2)
    return left, top, min(width, left + side), min(height, top + side)


def centre_crop(image: Image.Image, side: int) -> Image.Image:
    return image.crop(centre_box(image.width, image.height, side))


def zoomed_out(photos: list[torch.Tensor], factor: float, smallest: int) -> list[torch.Tensor]:
    """`photos` (uint8, 3 x H x W) downscaled by `factor` with an antialiased filter, the ones still
    at least `smallest` pixels on their shorter side: the same scenes with more detail per pixel,
    as the small photos the denoiser is measured on hold (a 512-px photo of a whole cat, where a
    training crop of a 4K wallpaper shows a patch of sky)."""
    zoomed = []
    for photo in photos:
        height, width = (round(side / factor) for side in photo.shape[-2:])
        if min(height, width) >= smallest:
            small = F.interpolate(photo[None].float(), (height, width), mode="bilinear", antialias=True)
            zoomed.append(small[0].round().clamp(0, 255).to(torch.uint8))
    if not zoomed:
        raise ValueError(f"no training photo keeps {smallest} pixels a side when downscaled by {factor}")
    return zoomed


class CropSampler:
    """Random crops of a set of photos of any sizes, drawn on the device without a Python loop.

    Each photo is cut into tiles of 2*crop pixels at a stride of crop, so every crop position
    of the photo lies inside some tile; a batch is then one gather from the stacked tiles.
    Photos smaller than a crop are reflect-padded to one.

    With `sampling="pixel"` every pixel is as likely as any other (a 4K wallpaper gives 50 times
    the crops of a 512-px photo); with `sampling="photo"` a batch first draws photos, each as
    likely as any other, then a tile of the photo.
    """

    def __init__(
        self,
        photos: list[torch.Tensor],
        crop: int,
        device: torch.device,
        generator: torch.Generator,
        sampling: str = "photo",
    ):
        if sampling not in ("pixel", "photo"):
            raise ValueError(f"sampling must be 'pixel' or 'photo', got {sampling!r}")
        self.crop, self.device, self.generator, self.sampling = crop, device, generator, sampling
        side = 2 * crop
        tiles, valid, first_tile = [], [], []
        for photo in photos:
            photo = photo.to(device)
            pad_h, pad_w = max(0, crop - photo.shape[-2]), max(0, crop - photo.shape[-1])
            if pad_h or pad_w:  # reflected as the network pads its input (edge copies if tiny)
                photo = pad_bottom_right(photo[None].float(), pad_h, pad_w)[0].to(torch.uint8)
            height, width = photo.shape[-2:]
            first_tile.append(len(tiles))
            for top in tile_origins(height, side, crop):
                for left in tile_origins(width, side, crop):
                    tile = photo[:, top : top + side, left : left + side]
                    valid.append(tile.shape[-2:])
                    tiles.append(F.pad(tile, (0, side - tile.shape[-1], 0, side - tile.shape[-2])))
        if not tiles:
            raise ValueError("no training photos")
        self.tiles = torch.stack(tiles)  # (T, 3, side, side) uint8
        self.valid = torch.tensor(valid, device=device)  # (T, 2) height and width holding pixels
        self.first_tile = torch.tensor(first_tile, device=device)  # (P,) each photo's first tile
        self.tile_count = torch.diff(self.first_tile, append=torch.tensor([len(tiles)], device=device))
        self.offsets = torch.arange(crop, device=device)
        self.photos, self.pixels = len(photos), sum(p.shape[-1] * p.shape[-2] for p in photos)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(batch, 3, crop, crop) float crops in [0, 1], each in one of the 8 orientations, drawn
        with `generator` (default: the sampler's own)."""
        generator = generator or self.generator
        if self.sampling == "photo":
            photo = torch.randint(len(self.first_tile), (batch,), device=self.device, generator=generator)
            within = torch.rand(batch, device=self.device, generator=generator) * self.tile_count[photo]
            index = self.first_tile[photo] + within.long()
        else:
            index = torch.randint(len(self.tiles), (batch,), device=self.device, generator=generator)
        room = (self.valid[index] - self.crop + 1).float()
        top, left = (torch.rand(batch, 2, device=self.device, generator=generator) * room).long().unbind(1)
        rows = (top[:, None] + self.offsets)[:, None, :, None]
        cols = (left[:, None] + self.offsets)[:, None, None, :]
        channels = torch.arange(3, device=self.device)[None, :, None, None]
        crops = self.tiles[index[:, None, None, None], channels, rows, cols].float() / 255
        flips = torch.rand(batch, 3, device=self.device, generator=generator) < 0.5
        crops = torch.where(flips[:, 0, None, None, None], crops.flip(-1), crops)
        crops = torch.where(flips[:, 1, None, None, None], crops.flip(-2), crops)
        return torch.where(flips[:, 2, None, None, None], crops.transpose(-1, -2), crops)


def texture(crops: torch.Tensor) -> torch.Tensor:
    """(N,) the mean absolute difference between neighbouring pixels of each (N, C, H, W) crop:
    near 0 on sky and flat wallpaper, large on fur, foliage and fabric."""
    return crops.diff(dim=-1).abs().mean((1, 2, 3)) + crops.diff(dim=-2).abs().mean((1, 2, 3))


def most_textured(candidates: torch.Tensor) -> torch.Tensor:
    """(K, N, C, H, W) -> (N, C, H, W): for each of the N crops, the one of its K candidates with
    the most texture."""
    k, n = candidates.shape[:2]
    best = texture(candidates.flatten(0, 1)).view(k, n).argmax(0)
    return candidates[best, torch.arange(n, device=candidates.device)]
