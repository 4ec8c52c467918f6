"""Shared fixtures: small real-looking image folders made on the fly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def smooth_image(rng: np.random.Generator, height: int = 40, width: int = 48) -> Image.Image:
    """A smooth random colour field: denoisable, unlike white noise."""
    coarse = rng.random((4, 4, 3))
    small = Image.fromarray((coarse * 255).astype(np.uint8))
    return small.resize((width, height), Image.Resampling.BICUBIC)


def make_folder(root: Path, classes: dict[str, int], seed: int = 0, size: tuple[int, int] = (40, 48)) -> Path:
    rng = np.random.default_rng(seed)
    for label, count in classes.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            smooth_image(rng, *size).save(root / label / f"{label}_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """data/<class>/*.png with three classes of unequal size (36 images)."""
    return make_folder(tmp_path / "photos", {"cat": 16, "dog": 12, "wild": 8})


@pytest.fixture
def afhq_folder(tmp_path: Path) -> Path:
    """A miniature AFHQ: train/<class> and val/<class>."""
    root = tmp_path / "afhq"
    make_folder(root / "train", {"cat": 20, "dog": 20, "wild": 20}, seed=1)
    make_folder(root / "val", {"cat": 10, "dog": 10, "wild": 10}, seed=2)
    return root
