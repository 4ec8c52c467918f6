"""Run an image-to-image network over a large image in overlapping tiles, in bounded memory.

Tiles overlap and are blended with raised-cosine weights, so seams do not show. Tiles are
processed one row of tiles at a time and only a band of `tile` rows is kept in float, so
peak memory grows with the image width, not its area; input and output keep their own dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering `length`, neighbours overlapping by >= `overlap`."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def blend_ramp(size: int, overlap: int, fade_start: bool, fade_end: bool) -> np.ndarray:
    """1-D weights: 1 inside, rising/falling as a raised cosine over `overlap` at shared edges."""
    weights = np.ones(size, dtype=np.float32)
    ramp = np.sin(np.linspace(0, np.pi / 2, overlap + 2, dtype=np.float32)[1:-1]) ** 2
    ramp_len = min(overlap, size // 2)
    if fade_start:
        weights[:ramp_len] = ramp[:ramp_len]
    if fade_end:
        weights[size - ramp_len :] = ramp[:ramp_len][::-1]
    return weights


def to_float(array: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float pixels as float32 on the [0, 1] scale."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535
    return array.astype(np.float32)


def from_float(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 [0, 1] pixels back to `dtype` (rounded and clipped for integer types)."""
    if dtype == np.uint8:
        return (array.clip(0, 1) * 255 + 0.5).astype(np.uint8)
    if dtype == np.uint16:
        return (array.clip(0, 1) * 65535 + 0.5).astype(np.uint16)
    return array.clip(0, 1).astype(dtype)


def check_tiling(tile: int, overlap: int) -> None:
    """Tiles must overlap by less than half their side, so each one adds pixels of its own."""
    if overlap < 0 or tile <= 2 * overlap:
        raise ValueError(f"need 0 <= 2 * overlap < tile, got tile={tile}, overlap={overlap}")


def apply_tiled(
    network: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    tile: int,
    overlap: int,
    progress: bool = False,
) -> np.ndarray:
    """network((1, C, h, w) float32 tensor) applied to an H x W x C array, tile by tile.

    Returns an array of the input's shape and dtype. With tile >= max(H, W) the network sees
    the whole image at once. `progress` shows a bar of tiles (for photos of several tiles).
    """
    check_tiling(tile, overlap)
    height, width, channels = image.shape
    out = np.empty_like(image)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    bar = tqdm(total=len(ys) * len(xs), unit="tile", leave=False, disable=not progress or len(ys) * len(xs) == 1)
    band_top, band = 0, np.zeros((0, width, channels + 1), np.float32)  # last channel: weight sum
    for row, y in enumerate(ys):
        h = min(tile, height - y)
        # rows above y are final: no later tile touches them
        done = y - band_top
        if done > 0:
            finished = band[:done]
            out[band_top:y] = from_float(finished[..., :-1] / finished[..., -1:], image.dtype)
        keep = band[max(done, 0) :]
        band = np.zeros((h, width, channels + 1), np.float32)
        band[: len(keep)] = keep[:h]
        band_top = y
        wy = blend_ramp(h, overlap, row > 0, row < len(ys) - 1)
        for col, x in enumerate(xs):
            w = min(tile, width - x)
            patch = torch.from_numpy(to_float(image[y : y + h, x : x + w])).permute(2, 0, 1)[None]
            result = network(patch)[0].permute(1, 2, 0).float().cpu().numpy()
            weight = wy[:, None] * blend_ramp(w, overlap, col > 0, col < len(xs) - 1)[None, :]
            band[:, x : x + w, :-1] += result * weight[..., None]
            band[:, x : x + w, -1] += weight
            bar.update()
    out[band_top:] = from_float(band[..., :-1] / band[..., -1:], image.dtype)
    bar.close()
    return out
