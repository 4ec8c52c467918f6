"""Pack the training set for a lent GPU machine: as many photos as fit a size budget.

Code and data travel to the GPU machine in at most 64 MiB, tracked files included, so the
pack is the training set (data/pretrain, from utils/build_train_data.py) stored compactly:
JPEG with full-resolution colour (4:4:4) at the lowest quality whose PSNR against the stored
photo is at least `--min-psnr` dB (45 by default). WebP was measured and cannot do this: its
lossy mode halves the colour resolution, which caps it below 44 dB on detailed photos even at
quality 100, and its lossless mode takes ~8 bits per pixel against JPEG's ~3.

Validation photos all go in, as the centre crops that `model/train.py --preset gpu` validates on;
training photos go in, in a seeded random order, until the budget is spent, skipping those
smaller than one training crop.

    python -m utils.make_pack                      # data/pack, budget: 60 MiB minus the tracked files
    python -m utils.make_pack --budget-mib 20

Writes data/pack/train/*.jpg, data/pack/val/*.jpg and data/pack/pack.json (every file with
its quality, PSNR and source file; the share of the training set that fits).
"""

from __future__ import annotations

import io
import json
import math
import random
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from constants import DATA_DIR, PRETRAIN_DIR, ROOT_DIR, SEED
from model.config_flags import make_parser
from model.files import atomic_write, write_json_atomic
from model.photo_crops import centre_crop
from model.train_config import PRESETS

PACK_DIR = DATA_DIR / "pack"
TRANSFER_LIMIT_MIB = 60  # the machine takes 64 MiB; keep room for code that is not committed yet
MANIFEST_ROOM = 2**17  # pack.json travels too
QUALITIES = range(85, 101)
MIN_SIDE = 128  # the GPU recipe's crop size: smaller photos cannot give a training crop


def tracked_bytes(root: Path = ROOT_DIR) -> int:
    """Size of the files git tracks (they travel with the pack)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return sum((root / name).stat().st_size for name in files.decode().split("\0") if name and (root / name).exists())


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def jpeg(image: Image.Image, quality: int) -> tuple[bytes, float]:
    """A 4:4:4 JPEG of the image at `quality`, and its PSNR against the image."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue(), psnr_uint8(np.asarray(Image.open(buffer).convert("RGB")), np.asarray(image))


def encode(image: Image.Image, min_psnr: float) -> tuple[bytes, int, float]:
    """The smallest 4:4:4 JPEG of the image with PSNR >= min_psnr: (bytes, quality, PSNR); quality
    100 if even that falls short (pack.json says so).

    Bisection over quality: file size and PSNR both grow with it."""
    low, high = QUALITIES[0], QUALITIES[-1]
    best = None
    while low <= high:
        quality = (low + high) // 2
        data, score = jpeg(image, quality)
        if score >= min_psnr:
            best, high = (data, quality, score), quality - 1
        else:
            low = quality + 1
    if best is None:
        data, score = jpeg(image, 100)
        best = (data, 100, score)
    return best


def make_pack(
    pretrain_dir: Path = PRETRAIN_DIR,
    pack_dir: Path = PACK_DIR,
    budget_bytes: int | None = None,
    min_psnr: float = 45.0,
    seed: int = SEED,
) -> dict:
    """Write the pack; return its manifest (files, sizes, the share of the training set it holds)."""
    split = json.loads((pretrain_dir / "split.json").read_text())
    if budget_bytes is None:
        budget_bytes = TRANSFER_LIMIT_MIB * 2**20 - tracked_bytes() - MANIFEST_ROOM
    order = [("val", f) for f in split["val"]] + [
        ("train", f) for f in random.Random(seed).sample(split["train"], len(split["train"]))
    ]
    entries, used, skipped = [], 0, []
    for part, rel in tqdm(order, desc="packing", unit="photo"):
        image = Image.open(pretrain_dir / rel).convert("RGB")
        if part == "val":
            image = centre_crop(image, PRESETS["gpu"][1]["eval_crop_size"])
        if part == "train" and min(image.size) < MIN_SIDE:
            skipped.append(rel)
            continue
        data, quality, score = encode(image, min_psnr)
        if used + len(data) > budget_bytes:
            skipped.append(rel)
            continue
        name = f"{part}/{rel.replace('/', '__').removesuffix('.png')}.jpg"
        with atomic_write(pack_dir / name) as file:
            file.write(data)
        used += len(data)
        entries.append(
            {
                "file": name,
                "source": rel,
                "quality": quality,
                "psnr": round(score, 2),
                "bytes": len(data),
                "pixels": image.width * image.height,
            }
        )
    kept = {e["file"] for e in entries}
    for stale in [*pack_dir.glob("train/*.jpg"), *pack_dir.glob("val/*.jpg")]:
        if stale.relative_to(pack_dir).as_posix() not in kept:
            stale.unlink()  # left by an earlier pack: it would travel and be trained on
    train = [e for e in entries if e["file"].startswith("train/")]
    total_pixels = sum(math.prod(Image.open(pretrain_dir / rel).size) for rel in split["train"])
    manifest = {
        "min_psnr": min_psnr,
        "budget_bytes": budget_bytes,
        "bytes": used,
        "train_photos": len(train),
        "train_megapixels": round(sum(e["pixels"] for e in train) / 1e6, 1),
        "set_train_photos": len(split["train"]),
        "set_train_megapixels": round(total_pixels / 1e6, 1),
        "val_photos": len(entries) - len(train),
        "left_out": skipped,
        "files": entries,
    }
    write_json_atomic(pack_dir / "pack.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--pretrain", type=Path, default=PRETRAIN_DIR, help="the built set (utils/build_train_data.py)")
    parser.add_argument("--out", type=Path, default=PACK_DIR, help="pack folder")
    parser.add_argument(
        "--budget-mib", type=float, default=None, help="pack size (default: 60 MiB minus tracked files)"
    )
    parser.add_argument("--min-psnr", type=float, default=45.0, help="fidelity of each file, dB (default 45)")
    args = parser.parse_args(argv)
    budget = None if args.budget_mib is None else int(args.budget_mib * 2**20)
    m = make_pack(args.pretrain, args.out, budget, args.min_psnr)
    print(
        f"wrote {args.out}: {m['bytes'] / 2**20:.1f} MiB, {m['val_photos']} val + {m['train_photos']} train photos "
        f"({m['train_megapixels']} of {m['set_train_megapixels']} training MP, "
        f"{100 * m['train_megapixels'] / max(m['set_train_megapixels'], 1e-9):.0f}%)"
    )


if __name__ == "__main__":
    main()
