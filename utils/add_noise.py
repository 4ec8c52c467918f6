"""Write a paired noisy/clean copy of a split, for people who want the pairs as files.

    python -m utils.add_noise data/splits/demo.json --subset test --out data/noisy/demo_test

Layout (as in the original project): OUT/images/ noisy, OUT/labels/ clean, both lossless PNG
with the same relative names, plus OUT/noise.json recording sigma and seed. Each image's
noise is seeded by its name, so reruns write identical files. An 8-bit file cannot hold
values outside [0, 1], so noisy files are clipped; training on the fly is not. Existing
files are only replaced with --overwrite.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from constants import NOISE_SIGMA, SEED
from model.config_flags import make_parser
from model.dataset import ImageReadError, image_seed, load_image, save_png
from model.files import write_json_atomic
from model.split import load_split
from model.tasks import add_gaussian_noise


def add_noise(
    manifest: dict,
    subset: str,
    out_dir: str | Path,
    sigma: float = NOISE_SIGMA,
    seed: int = SEED,
    overwrite: bool = False,
) -> list[str]:
    """Write noisy/clean pairs of one subset of a split; returns the files that failed."""
    out_dir = Path(out_dir)
    if (out_dir / "images").exists() and any((out_dir / "images").iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: already holds noisy images; pass --overwrite to replace them")
    if not 0 <= sigma <= 1:
        raise ValueError(f"sigma must be within [0, 1] on the [0, 1] pixel scale, got {sigma}")
    root, failures = Path(manifest["root"]), []
    for name in tqdm(manifest[subset], desc=f"adding noise to {subset}"):
        try:
            clean = load_image(root / name)
        except ImageReadError as error:
            failures.append(str(error))
            continue
        generator = torch.Generator().manual_seed(image_seed(name, seed))
        noisy = add_gaussian_noise(clean, sigma, generator, clip=True)
        for folder, image in (("images", noisy), ("labels", clean)):
            target = (out_dir / folder / name).with_suffix(".png")
            save_png(image, target)
    write_json_atomic(out_dir / "noise.json", {"sigma": sigma, "seed": seed, "clipped": True, "subset": subset})
    return failures


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("split", type=Path, help="a manifest written by utils/split_data.py")
    parser.add_argument("--subset", choices=("train", "val", "test"), default="test", help="which part of the split")
    parser.add_argument("--out", type=Path, required=True, help="folder for the noisy/ and clean/ copies")
    parser.add_argument("--sigma", type=float, default=NOISE_SIGMA, help="noise std on the [0, 1] scale")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the noise (each image its own stream)")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    args = parser.parse_args()
    try:
        failures = add_noise(load_split(args.split), args.subset, args.out, args.sigma, args.seed, args.overwrite)
    except (FileExistsError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    for failure in failures:
        print(f"skipped: {failure}")
    print(f"wrote pairs to {args.out}" + (f" ({len(failures)} files failed)" if failures else ""))
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
