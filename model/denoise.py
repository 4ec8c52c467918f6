"""Denoise photos: a Python API for any image type and a command line for files and folders.

    from model.denoise import denoise
    clean = denoise(noisy)                    # numpy, PIL or tensor in, the same kind out;
                                              # the pretrained model, the noise level estimated
    python -m model.denoise photo.jpg more_photos/ -o denoised/ [--sigma 25] [--ensemble]

Large images are denoised in overlapping, blended tiles, so memory stays bounded. The CLI
writes `<name>_denoised.png` (or --format) atomically, never overwrites an input, replaces an
existing output only with --overwrite (--skip-existing keeps them: an interrupted batch goes
on), and carries on past a bad file, listing the failures.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

import constants as C
from model.checkpoint import CheckpointError, load_model
from model.config_flags import make_parser
from model.device import keep_freed_memory, pick_device
from model.noise_level import estimate_sigma
from model.photo_batch import collect
from model.photo_io import (
    FORMATS,
    MAX_MEGAPIXELS,
    MIN_SIDE,
    Photo,
    PhotoError,
    fitting_metadata,
    kept_metadata,
    read_photo,
    write_photo,
)
from model.pixels import pixel_array
from model.precision import native_bf16, warn_if_emulated_bf16
from model.tiling import apply_tiled, check_tiling, to_float
from model.unet import UNet

TILE = 512  # pixels per tile side on the CPU; larger tiles cost memory, smaller ones time
OVERLAP = 64
SIGMA_MAX = 0.5
ESTIMATE_SIDE = 1024  # the noise estimate looks at a central crop at most this big
PRECISIONS = ("fp32", "bf16", "auto")  # auto: bf16 where the hardware multiplies it natively
DEFAULT_PRECISION = "auto"  # bf16 moved no eval_quality row by more than 0.04 dB (2026-11-26)
NOISE_MARGIN = 6  # float inputs may stray this many sigmas outside [0, 1]: noise, not another scale


def load_pretrained(device: str | torch.device | None = None) -> UNet:
    """The shipped denoiser (model/storage/trained_unet.pth) in eval mode on `device` (default: best)."""
    if not C.CHECKPOINT_PATH.exists():
        raise FileNotFoundError(
            f"{C.CHECKPOINT_PATH.relative_to(C.ROOT_DIR)}: no pretrained checkpoint; "
            "train one with `python -m model.recipes`"
        )
    model, _ = load_model(C.CHECKPOINT_PATH, pick_device(str(device or "")))
    return fastest_layout(model)


def fastest_layout(model: UNet) -> UNet:
    """channels_last on the CPU and CUDA, where its convolutions are faster (1.3-1.4x measured on a
    2-core CPU, fp32 and bf16 alike)."""
    device = next(model.parameters()).device
    return model.to(memory_format=torch.channels_last) if device.type in ("cpu", "cuda") else model


@functools.lru_cache(maxsize=2)
def _cached_pretrained(device: str) -> UNet:
    return load_pretrained(device)


def check_sigma(sigma: float) -> float:
    if not 0 <= sigma <= SIGMA_MAX:
        raise ValueError(f"sigma must be within [0, {SIGMA_MAX}] on the [0, 1] scale (0-127.5 of 255), got {sigma}")
    return float(sigma)


def check_strength(strength: float) -> float:
    if strength <= 0:
        raise ValueError(f"strength must be > 0, got {strength}")
    return float(strength)


def check_float_scale(colour: np.ndarray, sigma: float) -> None:
    """Refuse float pixels on another scale than [0, 1] (0-255 floats, HDR), which would be clipped."""
    low, high = float(colour.min()), float(colour.max())
    margin = NOISE_MARGIN * sigma + 0.01
    if low < -margin or high > 1 + margin:
        raise ValueError(
            f"float pixels range from {low:.3g} to {high:.3g}, beyond [0, 1] and its noise: scale them to [0, 1] "
            "(e.g. image / 255) or pass clip=True to clip them"
        )


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
    precision: str = DEFAULT_PRECISION,
    ensemble: bool = False,
    strength: float = 1.0,
    clip: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Denoise an H x W or H x W x C array (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA).

    uint8 and uint16 are read on their full scale; floats as [0, 1]: noisy values a few sigmas
    outside are fine, but values on another scale (0-255 floats, HDR) are refused unless
    `clip=True` clips them to [0, 1] first; NaN and infinity are refused. The result has the
    input's shape and dtype, clipped to its range; alpha is passed through untouched.
    `strength` multiplies the given or estimated sigma (< 1 keeps more texture, > 1 removes
    more; at most SIGMA_MAX is used). `precision` "bf16" runs the network under bfloat16
    autocast, "auto" does so where the hardware multiplies bf16 natively; a model stored
    channels_last gets its tiles channels_last (benchmarks/inference_speed.py measures both).
    `ensemble` averages the outputs for the 8 flips and rotations of each tile: 8x the time
    for a little more PSNR (benchmarks/eval_quality.py measures it). `progress` shows a bar of
    tiles.
    """
    if array.dtype not in (np.uint8, np.uint16, np.float16, np.float32, np.float64):
        raise ValueError(f"unsupported pixel type {array.dtype}; use uint8, uint16 or float in [0, 1]")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    check_strength(strength)
    image = array[..., None] if array.ndim == 2 else array
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        hint = " (channels first? pass array.transpose(1, 2, 0))" if image.ndim == 3 and image.shape[0] <= 4 else ""
        raise ValueError(f"expected H x W or H x W x C with C in 1-4, got shape {array.shape}{hint}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}; at least {MIN_SIDE}x{MIN_SIDE} pixels needed")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError("image holds NaN or infinite values; replace them (e.g. np.nan_to_num) before denoising")
    if clip and image.dtype.kind == "f":
        image = image.clip(0, 1)
    colour_channels = 1 if image.shape[2] <= 2 else 3
    colour, alpha = image[..., :colour_channels], image[..., colour_channels:]
    if sigma is not None:
        sigma = check_sigma(sigma)
    elif model.noise_level_input:
        sigma = estimate_image_sigma(colour)
    if colour.dtype.kind == "f":
        check_float_scale(colour, sigma if sigma is not None else estimate_image_sigma(colour))
    if sigma is not None:
        sigma = min(sigma * strength, SIGMA_MAX)
    device = next(model.parameters()).device
    if precision == "bf16":
        warn_if_emulated_bf16(device)
    bf16 = precision == "bf16" or (precision == "auto" and native_bf16(device))
    if device.type == "cpu":
        keep_freed_memory()
    model.eval()

    @torch.inference_mode()
    def network(patch: torch.Tensor) -> torch.Tensor:
        rgb = patch.to(device).expand(-1, 3, -1, -1)  # gray goes through the RGB model as R = G = B
        if model.in_conv.conv[0].weight.is_contiguous(memory_format=torch.channels_last):
            rgb = rgb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = (model(rgb, sigma) if model.noise_level_input else model(rgb)).float()
        return out.mean(dim=1, keepdim=True) if colour_channels == 1 else out

    out = apply_tiled(self_ensemble(network) if ensemble else network, colour, tile, overlap, progress)
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
    strength: float = 1.0,
    precision: str = DEFAULT_PRECISION,
    clip: bool = False,
) -> np.ndarray | Image.Image | torch.Tensor:
    """Denoise a numpy array (H x W [x C]), a PIL image or a tensor ((H, W), (C, H, W) or (N, C, H, W)).

    Returns the same kind, shape and pixel type; uint8 and uint16 (numpy or tensor, e.g. from
    `torchvision.io.read_image`) are read on their full scale, floats as [0, 1]. `model=None` uses the pretrained model;
    `sigma` is the noise std on the [0, 1] scale (25/255 ~ 0.098), estimated from the image
    when None, and multiplied by `strength`. Images larger than `tile` are processed in tiles
    overlapping by `overlap`. `ensemble=True` averages over 8 flips and rotations (8x slower,
    a little better). `precision` and `clip`: see `denoise_array`.
    """
    if model is None:
        model = _cached_pretrained(pick_device().type)
    options = {
        "tile": tile,
        "overlap": overlap,
        "ensemble": ensemble,
        "strength": strength,
        "precision": precision,
        "clip": clip,
    }
    if isinstance(image, (str, Path)):
        raise TypeError(
            f"got a path ({image}), not pixels: pass PIL.Image.open(path), or for files and folders use "
            "`python -m model.denoise PATH -o OUT` (EXIF, ICC and 16-bit kept)"
        )
    if isinstance(image, Image.Image):
        return denoise_pil(image, model, sigma, **options)
    if isinstance(image, torch.Tensor):
        if image.ndim not in (2, 3, 4):
            raise ValueError(f"expected an (H, W), (C, H, W) or (N, C, H, W) tensor, got shape {tuple(image.shape)}")
        batch = image.reshape((1,) * (4 - image.ndim) + tuple(image.shape)).detach().permute(0, 2, 3, 1).cpu()
        if batch.dtype not in (torch.uint8, torch.uint16):  # integers keep their scale (read_image gives uint8)
            batch = batch.float()
        arrays = batch.numpy()
        outs = [denoise_array(a, model, sigma, **options) for a in arrays]
        out = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2).to(image.device, image.dtype)
        return out.reshape(image.shape)
    return denoise_array(np.asarray(image), model, sigma, **options)


def denoise_pil(image: Image.Image, model: UNet, sigma: float | None = None, **options) -> Image.Image:
    """A PIL image of any mode: 8-bit gray and colour modes keep their mode, 16-bit gray (I;16 in
    any byte order, I) comes back as I;16, F as F, premultiplied La / RGBa as LA / RGBA; other
    modes (palette, 1-bit, CMYK, YCbCr, LAB) become RGB, or RGBA where they carry transparency.
    `options` are denoise_array's."""
    out = Image.fromarray(denoise_array(pixel_array(image), model, sigma, **options))  # mode from dtype and shape
    out.info = fitting_metadata(kept_metadata(image.info), out.mode)
    return out


def denoise_file(
    model: UNet,
    source: str | Path,
    target: str | Path,
    sigma: float | None = None,
    overwrite: bool = False,
    max_megapixels: float = MAX_MEGAPIXELS,
    **options,
) -> Path:
    """Denoise the photo `source` into `target` (format from its suffix); never writes over the input.
    `options` are denoise_array's (tile, overlap, ensemble, strength, precision)."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve():
        raise ValueError(f"{target}: output would overwrite the input")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: exists; pass overwrite=True (--overwrite) to replace it, or --skip-existing")
    photo = read_photo(source, max_megapixels)
    if photo.frames > 1:
        warnings.warn(f"{source}: {photo.frames} frames; only the first is denoised", stacklevel=2)
    try:
        if isinstance(photo.pixels, np.ndarray):
            clean = Photo(denoise_array(photo.pixels, model, sigma, **options), photo.info)
        else:
            image = denoise_pil(photo.pixels, model, sigma, **options)
            clean = Photo(image, fitting_metadata(photo.info, image.mode))
    except ValueError as error:  # e.g. float pixels on another scale than [0, 1]
        raise PhotoError(f"{source}: {error}") from error
    return write_photo(clean, target)


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and prove it takes files, before any work is done."""
    if folder.exists() and not folder.is_dir():
        raise PermissionError(f"{folder}: is a file; -o names the folder the outputs go to")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise PermissionError(f"{folder}: output folder is not writable ({error.strerror or error})") from None


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders (searched recursively)")
    parser.add_argument("-o", "--output-dir", type=Path, required=True, help="folder for the outputs")
    parser.add_argument("--sigma", type=float, help="noise std in 0-255 units, e.g. 25 (default: estimated per photo)")
    parser.add_argument("--strength", type=float, default=1.0, help="multiplies sigma: < 1 keeps texture (default 1)")
    parser.add_argument("--checkpoint", type=Path, default=C.CHECKPOINT_PATH, help="weights (default: the shipped)")
    parser.add_argument("--device", default="", help="cpu, cuda, mps (default: the fastest available)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DEFAULT_PRECISION,
        help="fp32, bf16 autocast, or auto: bf16 where the hardware has it natively",
    )
    parser.add_argument("--tile", type=int, default=TILE, help="tile side in pixels")
    parser.add_argument("--overlap", type=int, default=OVERLAP, help="tile overlap in pixels")
    parser.add_argument("--format", choices=FORMATS, default="png", help="output format (default png)")
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=MAX_MEGAPIXELS,
        help="larger photos are refused, checked from the file header",
    )
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    existing.add_argument(
        "--skip-existing", action="store_true", help="keep existing outputs: go on with an interrupted batch"
    )
    parser.add_argument("--ensemble", action="store_true", help="average 8 flips/rotations: 8x slower, a little better")
    args = parser.parse_args(argv)

    try:
        sigma = None if args.sigma is None else check_sigma(args.sigma / 255)
        check_strength(args.strength)
        check_tiling(args.tile, args.overlap)
        device = pick_device(args.device)
        batch = collect(args.inputs, args.output_dir, args.format)
        check_writable(args.output_dir)
        model = fastest_layout(load_model(args.checkpoint, device)[0])
    except (ValueError, FileNotFoundError, PermissionError, CheckpointError) as error:
        raise SystemExit(f"error: {error}") from None

    if args.sigma is not None and 0 < args.sigma < 1:
        print(f"note: --sigma is on the 0-255 scale: {args.sigma:g} is almost no noise (25 is strong)", file=sys.stderr)
    for line in batch.problems:
        print(f"error: {line}", file=sys.stderr)
    for line in batch.notes:
        print(f"note: {line}", file=sys.stderr)
    options = {
        "tile": args.tile,
        "overlap": args.overlap,
        "ensemble": args.ensemble,
        "strength": args.strength,
        "precision": args.precision,
        "progress": True,
    }
    failures = list(batch.problems)
    todo = [(source, target) for source, target in batch.pairs if not (args.skip_existing and target.exists())]
    kept = len(batch.pairs) - len(todo)
    for source, target in tqdm(todo, desc="denoising", unit="image"):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                denoise_file(model, source, target, sigma, args.overwrite, args.max_megapixels, **options)
            for warning in caught:
                tqdm.write(f"note: {warning.message}", file=sys.stderr)
        except (PhotoError, FileExistsError, ValueError, OSError) as error:
            failures.append(str(error))
            tqdm.write(f"error: {error}", file=sys.stderr)
        except Exception as error:  # noqa: BLE001 - a library surprise or out of memory costs one photo, not the batch
            failures.append(f"{source}: unexpected {type(error).__name__}: {error}")
            tqdm.write(f"error: {failures[-1]}", file=sys.stderr)
    done = len(todo) - (len(failures) - len(batch.problems))
    skipped = f"; skipped {batch.skipped} hidden or non-image file(s) in the folders" if batch.skipped else ""
    skipped += f"; kept {kept} existing output(s)" if kept else ""
    print(f"{done} of {len(batch.pairs) + len(batch.problems)} images denoised into {args.output_dir}{skipped}")
    if failures:
        print(f"{len(failures)} failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
