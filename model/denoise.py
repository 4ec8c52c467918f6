"""Denoise photos: a Python API for any image type and a command line for files and folders.

    from model.denoise import denoise
    clean = denoise(noisy)                    # numpy, PIL or tensor in, the same kind out;
                                              # the pretrained model, the noise level estimated
    python -m model.denoise photo.jpg more_photos/ -o denoised/ [--sigma 25] [--ensemble]

Large images are denoised in overlapping, blended tiles, so memory stays bounded. The CLI
writes `<name>_denoised.png` (or --format) atomically, never overwrites an input, replaces an
existing output only with --overwrite, and carries on past a bad file, listing the failures.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

import constants as C
from model.checkpoint import CheckpointError, load_model
from model.dataset import list_images
from model.device import pick_device
from model.noise_level import estimate_sigma
from model.photo_io import FORMATS, MAX_MEGAPIXELS, MIN_SIDE, Photo, PhotoError, read_photo, write_photo
from model.precision import warn_if_emulated_bf16
from model.tiling import apply_tiled, to_float
from model.unet import UNet

TILE = 512  # pixels per tile side on the CPU; larger tiles cost memory, smaller ones time
OVERLAP = 64
SIGMA_MAX = 0.5
ESTIMATE_SIDE = 1024  # the noise estimate looks at a central crop at most this big


def load_pretrained(device: str | torch.device | None = None) -> UNet:
    """The shipped denoiser (model/storage/trained_unet.pth) in eval mode on `device` (default: best)."""
    if not C.CHECKPOINT_PATH.exists():
        raise FileNotFoundError(
            f"{C.CHECKPOINT_PATH.relative_to(C.ROOT_DIR)}: no pretrained checkpoint; "
            "train one with `python -m benchmarks.train_pretrained`"
        )
    model, _ = load_model(C.CHECKPOINT_PATH, pick_device(str(device or "")))
    return model


@functools.lru_cache(maxsize=2)
def _cached_pretrained(device: str) -> UNet:
    return load_pretrained(device)


def check_sigma(sigma: float) -> float:
    if not 0 <= sigma <= SIGMA_MAX:
        raise ValueError(f"sigma must be within [0, {SIGMA_MAX}] on the [0, 1] scale (0-127.5 of 255), got {sigma}")
    return float(sigma)


def estimate_image_sigma(image: np.ndarray) -> float:
    """The noise level of an H x W x C array, from a central crop (bounded time on huge photos)."""
    height, width = image.shape[:2]
    top, left = max(0, (height - ESTIMATE_SIDE) // 2), max(0, (width - ESTIMATE_SIDE) // 2)
    crop = to_float(image[top : top + ESTIMATE_SIDE, left : left + ESTIMATE_SIDE])
    return min(estimate_sigma(crop), SIGMA_MAX)


def denoise_array(
    array: np.ndarray,
    model: UNet,
    sigma: float | None = None,
    tile: int = TILE,
    overlap: int = OVERLAP,
    bf16: bool = False,
    ensemble: bool = False,
) -> np.ndarray:
    """Denoise an H x W or H x W x C array (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA).

    uint8 and uint16 are read on their full scale; floats as [0, 1] (noisy values outside are
    fine). The result has the input's shape and dtype; alpha is passed through untouched.
    `bf16` runs the network under bfloat16 autocast; a model stored channels_last gets its
    tiles channels_last (benchmarks/inference_speed.py measures both). `ensemble` averages the
    outputs for the 8 flips and rotations of each tile: 8x the time for a little more PSNR
    (benchmarks/eval_quality.py measures it).
    """
    if array.dtype not in (np.uint8, np.uint16, np.float16, np.float32, np.float64):
        raise ValueError(f"unsupported pixel type {array.dtype}; use uint8, uint16 or float in [0, 1]")
    image = array[..., None] if array.ndim == 2 else array
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected H x W or H x W x C with C in 1-4, got shape {array.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}; at least {MIN_SIDE}x{MIN_SIDE} pixels needed")
    colour_channels = 1 if image.shape[2] <= 2 else 3
    colour, alpha = image[..., :colour_channels], image[..., colour_channels:]
    if sigma is not None:
        sigma = check_sigma(sigma)
    elif model.noise_level_input:
        sigma = estimate_image_sigma(colour)
    device = next(model.parameters()).device
    if bf16:
        warn_if_emulated_bf16(device)
    model.eval()

    @torch.inference_mode()
    def network(patch: torch.Tensor) -> torch.Tensor:
        rgb = patch.to(device).expand(-1, 3, -1, -1)  # gray goes through the RGB model as R = G = B
        if model.in_conv.conv[0].weight.is_contiguous(memory_format=torch.channels_last):
            rgb = rgb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = (model(rgb, sigma) if model.noise_level_input else model(rgb)).float()
        return out.mean(dim=1, keepdim=True) if colour_channels == 1 else out

    out = apply_tiled(self_ensemble(network) if ensemble else network, colour, tile, overlap)
    if alpha.shape[2]:
        out = np.concatenate([out, alpha], axis=2)
    return out[..., 0] if array.ndim == 2 else out


def self_ensemble(network: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """`network` averaged over the 8 rotations and flips of its N x C x H x W input.

    Noise is the same in every orientation but the network's errors are not, so their mean
    is a better estimate (the "x8" test mode of KAIR / DRUNet).
    """

    def averaged(patch: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for mirrored in (False, True):
            view = patch.flip(-1) if mirrored else patch
            for turns in range(4):
                out = network(view.rot90(turns, (-2, -1))).rot90(-turns, (-2, -1))
                total = total + (out.flip(-1) if mirrored else out)
        return total / 8

    return averaged


def denoise(
    image: np.ndarray | Image.Image | torch.Tensor,
    model: UNet | None = None,
    sigma: float | None = None,
    tile: int = TILE,
    overlap: int = OVERLAP,
    ensemble: bool = False,
) -> np.ndarray | Image.Image | torch.Tensor:
    """Denoise a numpy array (H x W [x C]), a PIL image or a tensor ((C, H, W) or (N, C, H, W)).

    Returns the same kind, shape and pixel type. `model=None` uses the pretrained model;
    `sigma` is the noise std on the [0, 1] scale (25/255 ~ 0.098), estimated from the image
    when None. Images larger than `tile` are processed in tiles overlapping by `overlap`.
    `ensemble=True` averages over 8 flips and rotations (8x slower, a little better).
    """
    if model is None:
        model = _cached_pretrained(pick_device().type)
    if isinstance(image, Image.Image):
        return denoise_pil(image, model, sigma, tile, overlap, ensemble)
    if isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4):
            raise ValueError(f"expected a (C, H, W) or (N, C, H, W) tensor, got shape {tuple(image.shape)}")
        batch = image[None] if image.ndim == 3 else image
        arrays = batch.detach().float().permute(0, 2, 3, 1).cpu().numpy()
        outs = [denoise_array(a, model, sigma, tile, overlap, ensemble=ensemble) for a in arrays]
        out = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2).to(image.device, image.dtype)
        return out[0] if image.ndim == 3 else out
    return denoise_array(np.asarray(image), model, sigma, tile, overlap, ensemble=ensemble)


def denoise_pil(
    image: Image.Image, model: UNet, sigma: float | None, tile: int, overlap: int, ensemble: bool = False
) -> Image.Image:
    """A PIL image of any mode; 8-bit modes and I;16 keep their mode, others become RGB(A)."""
    if image.mode in ("L", "LA", "RGB", "RGBA", "I;16"):
        converted = image
    elif image.mode in ("I", "I;16B", "I;16L"):
        converted = Image.fromarray(np.asarray(image).clip(0, 65535).astype(np.uint16))
    else:  # palette, 1-bit, CMYK, ...
        has_alpha = "A" in image.mode or "transparency" in image.info
        converted = image.convert("RGBA" if has_alpha else "RGB")
    pixels = denoise_array(np.asarray(converted), model, sigma, tile, overlap, ensemble=ensemble)
    out = Image.fromarray(pixels, converted.mode)
    out.info = {key: value for key, value in image.info.items() if key in ("exif", "icc_profile", "dpi")}
    return out


def denoise_file(
    model: UNet,
    source: str | Path,
    target: str | Path,
    sigma: float | None = None,
    overwrite: bool = False,
    tile: int = TILE,
    overlap: int = OVERLAP,
    max_megapixels: float = MAX_MEGAPIXELS,
    ensemble: bool = False,
) -> Path:
    """Denoise the photo `source` into `target` (format from its suffix); never writes over the input."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve():
        raise ValueError(f"{target}: output would overwrite the input")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: exists; pass overwrite=True (--overwrite) to replace it")
    photo = read_photo(source, max_megapixels)
    if isinstance(photo.pixels, np.ndarray):
        return write_photo(Photo(denoise_array(photo.pixels, model, sigma, tile, overlap, ensemble=ensemble)), target)
    return write_photo(Photo(denoise_pil(photo.pixels, model, sigma, tile, overlap, ensemble), photo.info), target)


def collect_inputs(items: list[Path], output_dir: Path, suffix: str) -> list[tuple[Path, Path]]:
    """(source, target) pairs from files and folders; the same file twice or two sources for one target is an error."""
    sources = [p for item in items for p in (list_images(item) if item.is_dir() else [item])]
    seen: dict[Path, Path] = {}
    targets: dict[Path, Path] = {}
    pairs = []
    for source in sources:
        resolved = source.resolve()
        if resolved in seen:
            raise ValueError(f"{source}: given twice (also as {seen[resolved]})")
        seen[resolved] = source
        target = output_dir / f"{source.stem}_denoised.{suffix}"
        if target in targets:
            raise ValueError(f"{source} and {targets[target]} would both be written to {target}")
        targets[target] = source
        pairs.append((source, target))
    return pairs


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and prove it takes files, before any work is done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise PermissionError(f"{folder}: output folder is not writable ({error.strerror or error})") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("-o", "--output-dir", type=Path, required=True)
    parser.add_argument(
        "--sigma", type=float, default=None, help="noise std in 0-255 units, e.g. 25; default: estimated"
    )
    parser.add_argument("--checkpoint", type=Path, default=C.CHECKPOINT_PATH)
    parser.add_argument("--device", default="", help="cpu, cuda, mps; default: the fastest available")
    parser.add_argument("--tile", type=int, default=TILE, help="tile side in pixels")
    parser.add_argument("--overlap", type=int, default=OVERLAP, help="tile overlap in pixels")
    parser.add_argument("--format", choices=FORMATS, default="png", help="output format")
    parser.add_argument("--max-megapixels", type=float, default=MAX_MEGAPIXELS)
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--ensemble", action="store_true", help="average 8 flips/rotations: 8x slower, a little better")
    args = parser.parse_args(argv)

    try:
        sigma = None if args.sigma is None else check_sigma(args.sigma / 255)
        pairs = collect_inputs(args.inputs, args.output_dir, args.format)
        check_writable(args.output_dir)
        model, _ = load_model(args.checkpoint, pick_device(args.device))
    except (ValueError, FileNotFoundError, PermissionError, CheckpointError) as error:
        raise SystemExit(f"error: {error}") from None

    failures = []
    for source, target in tqdm(pairs, desc="denoising", unit="image"):
        try:
            denoise_file(
                model,
                source,
                target,
                sigma,
                args.overwrite,
                args.tile,
                args.overlap,
                args.max_megapixels,
                args.ensemble,
            )
        except (PhotoError, FileExistsError, ValueError, OSError) as error:
            failures.append(str(error))
            tqdm.write(f"error: {error}", file=sys.stderr)
    print(f"{len(pairs) - len(failures)} of {len(pairs)} images denoised into {args.output_dir}")
    if failures:
        print(f"{len(failures)} failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
