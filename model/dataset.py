"""Datasets: clean photos with Gaussian noise added on the fly, or paired noisy/clean files.

Every item is `(noisy, clean, sigma)`: float32 (3, H, W) tensors in [0, 1] (the noisy one is
not clipped unless asked) and the noise level as a 0-d tensor, so models that take the
noise level and models that don't train in the same loop (`model/train.py`).
"""

from __future__ import annotations

import json
import math
import random
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from constants import IMAGE_EXTENSIONS, NOISE_SIGMA, SEED
from model.files import atomic_write
from model.pixels import three_channels
from model.tasks import Denoise, Task
from model.tiling import to_float
from model.unet import pad_bottom_right


class ImageReadError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


def list_images(folder: str | Path) -> list[Path]:
    """All image files below `folder`, sorted so every machine sees the same order. Hidden files and
    folders are left out: macOS writes a `._photo.jpg` of metadata beside every photo it copies."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def load_image(path: str | Path) -> torch.Tensor:
    """Decode a photo to a float32 RGB tensor (3, H, W) in [0, 1], read as the denoise CLI reads
    it (model/photo_io.py): EXIF orientation applied, gray made RGB, alpha dropped, 16-bit and
    float colour kept, HEIC read, and a one-line error naming the file for anything else."""
    # Imported here: the GPU trainer imports this module on a machine without pypng / pillow-heif.
    from model.photo_io import PhotoError, read_pixels

    try:
        pixels = to_float(read_pixels(path, max_megapixels=math.inf))
    except PhotoError as error:
        raise ImageReadError(str(error)) from error
    return torch.from_numpy(three_channels(pixels).clip(0, 1)).permute(2, 0, 1).contiguous()


def save_png(image: torch.Tensor, path: Path) -> None:
    """Write a (3, H, W) tensor as an 8-bit PNG through a temporary file."""
    array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    with atomic_write(path, suffix=".png") as file:
        Image.fromarray(array).save(file, format="PNG")


def image_seed(name: str, seed: int) -> int:
    """A seed derived from a file name, identical on every machine and every run."""
    return zlib.crc32(f"{seed}:{name}".encode())


def seeded_noisy_copy(clean: np.ndarray, sigma: float, name: str) -> np.ndarray:
    """`clean` (float, [0, 1]) plus Gaussian noise seeded by the photo's name and sigma, not clipped:
    the evaluation noise of benchmarks/eval_quality.py and model/study.py, the same on every machine."""
    rng = np.random.default_rng(image_seed(f"{name}@{sigma:.6f}", SEED))
    return (clean + rng.normal(0, sigma, clean.shape)).astype(np.float32)


def pad_to(image: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad an image that is smaller than `size` on either side (edge copies if tiny)."""
    pad_h, pad_w = max(0, size - image.shape[-2]), max(0, size - image.shape[-1])
    return pad_bottom_right(image[None], pad_h, pad_w)[0]


def crop_and_flip(
    images: Sequence[torch.Tensor], size: int | None, train: bool, rng: random.Random
) -> list[torch.Tensor]:
    """The same crop (random if training, else centred) and flips applied to every image."""
    if size is not None:
        images = [pad_to(image, size) for image in images]
        height, width = images[0].shape[-2:]
        top = rng.randint(0, height - size) if train else (height - size) // 2
        left = rng.randint(0, width - size) if train else (width - size) // 2
        images = [image[:, top : top + size, left : left + size] for image in images]
    if train:
        if rng.random() < 0.5:
            images = [image.flip(-1) for image in images]
        if rng.random() < 0.5:
            images = [image.flip(-2) for image in images]
    return [image.contiguous() for image in images]


class NoisyImageDataset(Dataset):
    """Clean photos degraded on the fly: Gaussian noise by default, or any task of model/tasks.py.

    The degradation is drawn fresh for every training sample and fixed per image for eval.

    Args:
        paths: image files.
        sigma: noise std on the [0, 1] scale, or a (low, high) range sampled uniformly.
        crop_size: side of the square crop, or None for whole images.
        train: random crops, flips and noise seeded by the index (pass index + epoch * len
            for fresh draws each epoch, as the training loop does); otherwise a centre crop
            and noise seeded by the file name, so every evaluation sees the same noisy images.
        clip: clip the noisy image to [0, 1] (the original project did; the literature does not).
        repeats: how many times each image appears per epoch (more random crops of small sets).
        root: folder that names are taken relative to (for seeds and reports).
        sigma_power: sigma = low + (high - low) * u ** sigma_power with u ~ U[0, 1]; above 1 it
            draws low noise levels more often, so a blind range does not starve them.
        cache: keep decoded images in memory (small sets: decoding then costs nothing).
        task: the degradation that makes the input (model/tasks.py); default: Gaussian noise
            with the sigma, sigma_power and clip given here.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        sigma: float | tuple[float, float] = NOISE_SIGMA,
        crop_size: int | None = None,
        train: bool = False,
        clip: bool = False,
        repeats: int = 1,
        seed: int = SEED,
        root: str | Path | None = None,
        sigma_power: float = 1.0,
        cache: bool = False,
        task: Task | None = None,
    ) -> None:
        if not paths:
            raise ValueError("no images given to the dataset")
        low, high = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
        self.paths = [Path(p) for p in paths]
        self.root = Path(root) if root is not None else None
        self.crop_size, self.train = crop_size, train
        self.repeats, self.seed = repeats, seed
        self.task = task if task is not None else Denoise((float(low), float(high)), sigma_power, clip)
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None
        self.bad_files: set[Path] = set()

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def name(self, index: int) -> str:
        path = self.paths[index % len(self.paths)]
        return path.relative_to(self.root).as_posix() if self.root else path.name

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Training draws are seeded by the index itself: the training loop's sampler adds
        # epoch * len(self) to it (model/distributed.py), so every epoch sees new crops and
        # noise, identical in any process or worker and after a resume.
        seed = image_seed(f"train:{index}", self.seed)
        index %= len(self.paths)
        clean = self._load_skipping_bad(index)
        if not self.train:
            seed = image_seed(self.name(index), self.seed)
        rng, generator = random.Random(seed), torch.Generator().manual_seed(seed)
        (clean,) = crop_and_flip([clean], self.crop_size, self.train, rng)
        degraded, sigma = self.task.degrade(clean, rng, generator)
        return degraded, clean, torch.tensor(sigma, dtype=torch.float32)

    def _load_skipping_bad(self, index: int) -> torch.Tensor:
        """Load image `index`; a broken file is reported once and replaced by the next one."""
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        for offset in range(len(self.paths)):
            path = self.paths[(index + offset) % len(self.paths)]
            try:
                image = load_image(path)
                if self.cache is not None:
                    self.cache[index] = image
                return image
            except ImageReadError as error:
                if path not in self.bad_files:
                    self.bad_files.add(path)
                    warnings.warn(f"skipping {error}", stacklevel=2)
        raise ImageReadError(f"none of the {len(self.paths)} images could be read")


class PairedImageDataset(Dataset):
    """Noisy/clean file pairs as written by `utils/add_noise.py`: root/images, root/labels.

    Files are matched by name (not by listing order, which differs between machines), and any
    file without a partner is named in the error. The noise level comes from root/noise.json.
    """

    def __init__(self, root: str | Path, crop_size: int | None = None, train: bool = False) -> None:
        root = Path(root)
        noisy = {p.relative_to(root / "images").with_suffix("").as_posix(): p for p in list_images(root / "images")}
        clean = {p.relative_to(root / "labels").with_suffix("").as_posix(): p for p in list_images(root / "labels")}
        unmatched = sorted(set(noisy) ^ set(clean))
        if unmatched:
            shown = ", ".join(unmatched[:10]) + (" ..." if len(unmatched) > 10 else "")
            raise ValueError(f"{root}: {len(unmatched)} noisy/clean files without a partner: {shown}")
        if not noisy:
            raise ValueError(f"{root}: no image pairs in images/ and labels/")
        info_file = root / "noise.json"
        info = json.loads(info_file.read_text()) if info_file.exists() else {}
        self.sigma = float(info.get("sigma", float("nan")))
        self.names = sorted(noisy)
        self.pairs = [(noisy[n], clean[n]) for n in self.names]
        self.crop_size, self.train = crop_size, train

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        noisy_path, clean_path = self.pairs[index]
        noisy, clean = load_image(noisy_path), load_image(clean_path)
        if noisy.shape != clean.shape:
            raise ValueError(f"{noisy_path}: size {tuple(noisy.shape)} differs from {clean_path}")
        seed = torch.randint(2**62, ()).item() if self.train else index
        noisy, clean = crop_and_flip([noisy, clean], self.crop_size, self.train, random.Random(seed))
        return noisy, clean, torch.tensor(self.sigma, dtype=torch.float32)


def split_datasets(
    manifest: dict,
    sigma: float | tuple[float, float] = NOISE_SIGMA,
    crop_size: int | None = None,
    eval_crop_size: int | None = None,
    repeats: int = 1,
    clip: bool = False,
    seed: int = SEED,
    sigma_power: float = 1.0,
    cache: bool = False,
    task: Task | None = None,
) -> dict[str, NoisyImageDataset]:
    """Train/val/test datasets from a split manifest (see utils/split_data.py).

    Training gets random crops and fresh noise; validation a fixed centre crop; test whole
    images. Val and test noise is seeded per image, so their numbers are reproducible.
    """
    root = Path(manifest["root"])

    def dataset(name: str, crop: int | None, train: bool) -> NoisyImageDataset:
        paths = [root / p for p in manifest[name]]
        return NoisyImageDataset(
            paths, sigma, crop, train, clip, repeats if train else 1, seed, root, sigma_power, cache, task
        )

    return {
        "train": dataset("train", crop_size, True),
        "val": dataset("val", eval_crop_size, False),
        "test": dataset("test", None, False),
    }
