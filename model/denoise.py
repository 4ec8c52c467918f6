"""Denoise photos with a trained checkpoint.

    python -m model.denoise photo.jpg more_photos/ -o denoised/ --checkpoint runs/demo/best.pth

Outputs are `<name>_denoised.png`, written atomically; an input is never overwritten, an
existing output only with --overwrite, and a bad file is reported without stopping the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

import constants as C
from model.checkpoint import CheckpointError, load_model
from model.dataset import ImageReadError, list_images, load_image, save_png
from model.train import pick_device


@torch.no_grad()
def denoise_tensor(model: torch.nn.Module, noisy: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Denoise a (C, H, W) or (N, C, H, W) tensor in [0, 1]; returns the same shape.

    `sigma` (noise std on the [0, 1] scale) is required by models that take the noise level.
    """
    if getattr(model, "noise_level_input", False) and sigma is None:
        raise ValueError("this model takes the noise level: pass sigma (e.g. 25/255)")
    if sigma is not None and not 0 <= sigma <= 0.5:
        raise ValueError(f"sigma must be within [0, 0.5] on the [0, 1] scale, got {sigma}")
    model.eval()
    device = next(model.parameters()).device
    batch = noisy[None] if noisy.ndim == 3 else noisy
    out = model(batch.to(device), sigma).cpu()
    return out[0] if noisy.ndim == 3 else out


def denoise_file(
    model: torch.nn.Module, source: str | Path, target: str | Path, sigma: float | None = None, overwrite: bool = False
) -> Path:
    """Denoise the photo `source` into the PNG `target`; refuses to write over the input."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve():
        raise ValueError(f"{target}: output would overwrite the input")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: exists; pass overwrite=True (--overwrite) to replace it")
    denoised = denoise_tensor(model, load_image(source), sigma)
    save_png(denoised, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("-o", "--output-dir", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=C.CHECKPOINT_PATH)
    parser.add_argument("--sigma", type=float, default=None, help="noise std in 0-255 units, e.g. 25")
    parser.add_argument("--device", default="")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    try:
        model, _ = load_model(args.checkpoint, pick_device(args.device))
    except CheckpointError as error:
        raise SystemExit(f"error: {error}") from None
    sources = [p for item in args.inputs for p in (list_images(item) if item.is_dir() else [item])]
    sigma = None if args.sigma is None else args.sigma / 255
    failures = []
    for source in tqdm(sources, desc="denoising"):
        try:
            denoise_file(model, source, args.output_dir / f"{source.stem}_denoised.png", sigma, args.overwrite)
        except (ImageReadError, FileNotFoundError, FileExistsError, ValueError) as error:
            failures.append(str(error))
            tqdm.write(f"error: {error}")
    print(f"{len(sources) - len(failures)} of {len(sources)} images denoised into {args.output_dir}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
