"""Synthetic training images: the dead-leaves model, coloured from real photos.

Opaque disks fall one over the other; their radii follow a power law (density ~ r^-3, the
scale-invariant choice whose images share natural photos' 1/f^2 power spectrum and their mix
of flat regions and sharp occluding edges). The Dead Leaves++ / VibrantLeaves line of work
trains denoisers on such images alone within about half a dB of natural photos; here they
only widen a small photo set. Each disk takes the colour of a random pixel of a training
photo, so the colours are those the network meets, and a faint linear shading, so that not
every region is flat. Disks are drawn at twice the size and box-averaged: antialiased edges.
"""

from __future__ import annotations

import numpy as np
import torch

SUPERSAMPLE = 2


def colour_palette(photos: list[torch.Tensor], count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 3) uint8 colours: pixels drawn at random from random photos of (3, H, W) uint8 tensors."""
    colours = []
    for index in rng.integers(len(photos), size=count):
        photo = photos[index]
        y, x = rng.integers(photo.shape[1]), rng.integers(photo.shape[2])
        colours.append(photo[:, y, x].numpy())
    return np.stack(colours)


def dead_leaves(
    size: int, palette: np.ndarray, rng: np.random.Generator, min_radius: float = 1.0, max_radius: float | None = None
) -> np.ndarray:
    """One (size, size, 3) uint8 dead-leaves image; radii in pixels of the output.

    Disks are laid front to back, each painting only what no disk in front of it covers, until
    nothing is left uncovered (or a leaf budget runs out: the rest takes the last colour)."""
    side = size * SUPERSAMPLE
    low, high = min_radius * SUPERSAMPLE, (max_radius or size / 2) * SUPERSAMPLE
    canvas = np.zeros((side, side, 3), np.float32)
    uncovered = np.ones((side, side), bool)
    colour = palette[0].astype(np.float32)
    for _ in range(200_000):
        if not uncovered.any():
            break
        # inverse CDF of density ~ r^-3 on [low, high]
        radius = (low**-2 - rng.random() * (low**-2 - high**-2)) ** -0.5
        cy, cx = rng.uniform(-radius, side + radius, size=2)
        top, bottom = max(0, int(cy - radius)), min(side, int(cy + radius) + 1)
        left, right = max(0, int(cx - radius)), min(side, int(cx + radius) + 1)
        if top >= bottom or left >= right:
            continue
        ys, xs = np.ogrid[top:bottom, left:right]
        disk = ((ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2) & uncovered[top:bottom, left:right]
        if not disk.any():
            continue
        colour = palette[rng.integers(len(palette))].astype(np.float32)
        slope = rng.normal(0, 8, size=2) / max(radius, 1.0)  # up to ~+-16 levels across a leaf
        shade = (ys - cy) * slope[0] + (xs - cx) * slope[1]
        canvas[top:bottom, left:right][disk] = (colour + shade[..., None])[disk]
        uncovered[top:bottom, left:right] &= ~disk
    canvas[uncovered] = colour
    small = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def dead_leaves_set(
    photos: list[torch.Tensor], count: int, size: int, seed: int, palette_size: int = 4096
) -> list[torch.Tensor]:
    """`count` dead-leaves images as (3, size, size) uint8 tensors, coloured from `photos`, reproducibly."""
    rng = np.random.default_rng(seed)
    palette = colour_palette(photos, palette_size, rng)
    return [torch.from_numpy(dead_leaves(size, palette, rng)).permute(2, 0, 1).contiguous() for _ in range(count)]
