"""PSNR / SSIM of the pretrained denoiser against classical baselines, as one markdown table.

    python -m benchmarks.eval_quality                      # the full table (about an hour on 2 cores)
    python -m benchmarks.eval_quality --sets standard --sigmas 25/255
    python -m benchmarks.eval_quality --previous old.pth          # adds a column for other weights
    python -m benchmarks.eval_quality --methods noisy ours         # only these columns
    python -m benchmarks.eval_quality --methods ours --per-image   # which photos hold each row

Image sets: (a) the test split of the embedded demo photos, (b) standard offline photos
(scikit-image chelsea, coffee, astronaut; scikit-learn china, flower). None of them is in
the training set (utils/build_train_data.py). Not by default, as a diagnostic: (c) 256-px centre
crops of the training set's large held-out photos (data/pretrain, lossless), as they are and
JPEG'd at quality 90 and 75 (the demo and standard photos are JPEGs, or came from them).
Noise: Gaussian, not clipped, seeded by image name and sigma. Every output is clipped to [0, 1]
before scoring. Methods:

- noisy: the input itself;
- CBM3D: the `bm3d` package given the true sigma;
- NLM: scikit-image non-local means, its strength h tuned per sigma on a training photo;
- original recipe: the original U-Net and settings, trained on the same data for the same
  budget (model/recipes.py --recipe original; skipped if not trained);
- previous (with --previous PATH): other weights given the true sigma, such as the checkpoint
  that new weights would replace;
- ours: model/storage/trained_unet.pth (or --weights) given the true sigma; ours x8 the same averaged over
  the 8 flips and rotations of the input (`denoise(..., ensemble=True)`); ours (blind) given
  the sigma that model/noise_level.py estimates.

Time per megapixel is the mean over all images and sigmas, on this machine's CPU. With --previous,
each row's change (ours minus previous) follows the table to 0.001 dB, finer than the table's 0.01
and the shipping rule's 0.02 bound; with CBM3D's scores, the rule's verdict: new weights ship when
the worst row's margin to CBM3D rises and no row falls by more than 0.02 dB. CBM3D is slow (40 to
65 s per MP on 2 cores), so every score it makes is kept in benchmarks/cbm3d_scores.json (per image,
sigma and the clean photo's hash, for this bm3d version), written after every row so that a
stopped run keeps them; a run without the CBM3D column takes the verdict from there when every
row is cached, and --per-image each photo's margin to CBM3D: a mean over 5 or 12 photos hides
whether one photo or all of them hold a row.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import constants as C
from model.checkpoint import CheckpointError, load_model
from model.config_flags import make_parser
from model.dataset import seeded_noisy_copy
from model.denoise import PRECISIONS, denoise_array
from model.files import write_json_atomic
from model.jpeg import compress
from model.metrics import psnr, ssim
from model.photo_crops import centre_crop
from model.split import default_split

SIGMAS = {"5/255": 5 / 255, "10/255": 10 / 255, "15/255": 15 / 255, "25/255": 25 / 255, "50/255": 50 / 255, "0.5": 0.5}
ORIGINAL_RECIPE = C.RUNS_DIR / "original_recipe" / "best.pth"
NLM_STRENGTHS = (0.4, 0.6, 0.8, 1.0, 1.2)  # h = strength * sigma, chosen per sigma on NLM_TUNING_PHOTO
NLM_TUNING_PHOTO = "rocket"  # a training photo, never an evaluation one
SHIPPING_TOLERANCE = 0.02  # dB: how far any row may fall when new weights replace the shipped ones
CBM3D_CACHE = Path(__file__).with_name("cbm3d_scores.json")
VALIDATION_CROP = 256  # side of the validation photos' centre crops (CBM3D takes a minute per MP)


def standard_photos() -> dict[str, np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_image

    photos = {name: getattr(skimage.data, name)() for name in ("chelsea", "coffee", "astronaut")}
    photos |= {name: load_sample_image(f"{name}.jpg") for name in ("china", "flower")}
    return {name: image.astype(np.float32) / 255 for name, image in photos.items()}


def demo_test_photos() -> dict[str, np.ndarray]:
    split = default_split(C.DEMO_DIR)
    root = Path(split["root"])
    return {rel: np.asarray(Image.open(root / rel).convert("RGB"), np.float32) / 255 for rel in split["test"]}


def validation_photos(quality: int | None = None, root: Path = C.PRETRAIN_DIR) -> dict[str, np.ndarray]:
    """Centre crops of the training set's large held-out photos, lossless or JPEG'd at `quality`:
    how far the evaluation photos' JPEG origin, rather than the denoiser, sets the margin to CBM3D."""
    split_file = root / "split.json"
    if not split_file.exists():
        raise SystemExit(f"error: {split_file} is missing: build the set with python -m utils.build_train_data")
    photos = {}
    for rel in json.loads(split_file.read_text())["val_large"]:
        with Image.open(root / rel) as image:
            pixels = np.asarray(centre_crop(image.convert("RGB"), VALIDATION_CROP))
        photos[rel] = (pixels if quality is None else compress(pixels, quality)).astype(np.float32) / 255
    return photos


PHOTO_SETS: dict[str, Callable[[], dict[str, np.ndarray]]] = {
    "demo-test": demo_test_photos,
    "standard": standard_photos,
    "validation": validation_photos,
    "validation-jpeg90": lambda: validation_photos(90),
    "validation-jpeg75": lambda: validation_photos(75),
}


def tune_nlm(sigma: float) -> float:
    """The NLM strength with the best PSNR on the tuning photo at this sigma."""
    import skimage.data

    clean = skimage.data.rocket().astype(np.float32) / 255
    noisy = seeded_noisy_copy(clean, sigma, NLM_TUNING_PHOTO)
    scores = {k: score(nlm(noisy, sigma, k), clean)[0] for k in NLM_STRENGTHS}
    return max(scores, key=scores.get)


def nlm(noisy: np.ndarray, sigma: float, strength: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    options = {"patch_size": 5, "patch_distance": 6, "fast_mode": True, "channel_axis": -1}
    return denoise_nl_means(noisy, h=strength * sigma, sigma=sigma, **options)


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return bm3d.bm3d_rgb(noisy, sigma)


def photo_digest(clean: np.ndarray) -> str:
    """Part of each CBM3D cache key: a changed photo is a new entry, never a stale score."""
    return hashlib.sha1(clean.tobytes()).hexdigest()[:12]


def bm3d_version() -> str:
    from importlib.metadata import version

    return version("bm3d")


def read_cbm3d_cache(path: Path) -> dict[str, list[float]]:
    """Cached (PSNR, SSIM) per key, or nothing if the file is missing or from another bm3d version."""
    data = json.loads(path.read_text()) if path.exists() else {}
    return data.get("scores", {}) if data.get("bm3d") == bm3d_version() else {}


def score(output: np.ndarray, clean: np.ndarray, clip: bool = True) -> tuple[float, float]:
    output = np.clip(output, 0, 1) if clip else output
    out, ref = (torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1) for a in (output, clean))
    return float(psnr(out, ref)), float(ssim(out, ref))


def methods(
    sigmas: list[float],
    weights: Path = C.CHECKPOINT_PATH,
    previous: Path | None = None,
    only: list[str] | None = None,
    precision: str = "fp32",
) -> dict[str, Callable[[np.ndarray, float], np.ndarray]]:
    """name -> function(noisy, sigma) -> denoised, for every method available here (or those in `only`).

    NLM is tuned for each sigma here, so the tuning does not count in its run time.
    `previous`, if given, adds a column for other weights (given the true sigma), e.g. the
    checkpoint that new weights would replace. `precision` applies to "previous" and "ours".
    """
    ours, _ = load_model(weights, "cpu")
    table: dict[str, Callable] = {"noisy": lambda noisy, sigma: noisy, "CBM3D": cbm3d}
    if not only or "NLM" in only:
        strengths = {sigma: tune_nlm(sigma) for sigma in sigmas}
        print("NLM strength h / sigma: " + ", ".join(f"{s * 255:g}/255 -> {k}" for s, k in strengths.items()))
        table["NLM"] = lambda noisy, sigma: nlm(noisy, sigma, strengths[sigma])
    if not only or "original recipe" in only:
        if ORIGINAL_RECIPE.exists():
            original, _ = load_model(ORIGINAL_RECIPE, "cpu")
            table["original recipe"] = lambda noisy, sigma: denoise_array(noisy, original)
        else:
            print(f"(no {ORIGINAL_RECIPE.relative_to(C.ROOT_DIR)}: the original-recipe column is skipped)")
    if previous is not None:
        earlier, _ = load_model(previous, "cpu")
        table["previous"] = lambda noisy, sigma: denoise_array(noisy, earlier, sigma, precision=precision)
    table["ours"] = lambda noisy, sigma: denoise_array(noisy, ours, sigma, precision=precision)
    table["ours x8"] = lambda noisy, sigma: denoise_array(noisy, ours, sigma, precision=precision, ensemble=True)
    table["ours (blind)"] = lambda noisy, sigma: denoise_array(noisy, ours, precision=precision)
    return {name: method for name, method in table.items() if not only or name in only}


def evaluate(
    sets: dict[str, dict[str, np.ndarray]], sigmas: dict[str, float], cache: Path | None = CBM3D_CACHE, **options
) -> tuple[list[dict], dict]:
    """Rows of mean PSNR/SSIM per (set, sigma, method), and seconds per megapixel per method;
    `options` are those of `methods` (weights, previous, only, precision).

    CBM3D's scores go into `cache`; without the CBM3D column, a row whose every image is cached
    still gets its "CBM3D" entry (not in the table: the time per MP would be missing), so that
    `changes` can give the shipping rule's verdict. Each row's "per image" maps a method to
    its PSNR on every photo, in the order of "images"."""
    table = methods(list(sigmas.values()), **options)
    stored = read_cbm3d_cache(cache) if cache else {}
    rows, seconds, megapixels = [], dict.fromkeys(table, 0.0), 0.0
    for set_name, photos in sets.items():
        digests = {image_name: photo_digest(clean) for image_name, clean in photos.items()}
        for sigma_name, sigma in sigmas.items():
            scores: dict[str, list] = {name: [] for name in table}
            keys = {name: f"{set_name}/{name}@{sigma_name}#{digest}" for name, digest in digests.items()}
            for image_name, clean in photos.items():
                noisy = seeded_noisy_copy(clean, sigma, image_name)
                megapixels += clean.shape[0] * clean.shape[1] / 1e6
                for name, method in table.items():
                    started = time.perf_counter()
                    output = method(noisy, sigma)
                    seconds[name] += time.perf_counter() - started
                    scores[name].append(score(output, clean, clip=name != "noisy"))
                if "CBM3D" in table:
                    stored[keys[image_name]] = list(scores["CBM3D"][-1])
            if "CBM3D" not in table and all(key in stored for key in keys.values()):
                scores["CBM3D"] = [tuple(stored[key]) for key in keys.values()]
            row = {"set": set_name, "sigma": sigma_name, "images": list(photos)}
            row |= {name: tuple(np.mean(values, axis=0)) for name, values in scores.items()}
            row["per image"] = {name: [psnr for psnr, _ in values] for name, values in scores.items()}
            rows.append(row)
            print(
                f"{set_name} sigma {sigma_name}: " + ", ".join(f"{k} {v[0]:.2f}" for k, v in row.items() if k in table)
            )
            if cache and "CBM3D" in table:  # after every row, so that a stopped run keeps what it computed
                write_json_atomic(cache, {"bm3d": bm3d_version(), "scores": dict(sorted(stored.items()))})
    return rows, {name: seconds[name] / megapixels for name in table}


def markdown(rows: list[dict], per_megapixel: dict) -> str:
    names = list(per_megapixel)
    lines = [
        "| images | sigma | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for row in rows:
        cells = [f"{row[n][0]:.2f} / {row[n][1]:.3f}" for n in names]
        lines.append(f"| {row['set']} | {row['sigma']} | " + " | ".join(cells) + " |")
    lines.append("| s per MP | | " + " | ".join(f"{per_megapixel[n]:.2f}" for n in names) + " |")
    return "\n".join(lines)


def per_image(rows: list[dict]) -> str:
    """Every photo's PSNR per method, and ours minus CBM3D where both were scored (or cached)."""
    names = [name for name in rows[0]["per image"] if all(name in row["per image"] for row in rows)]
    margin = "ours" in names and "CBM3D" in names
    columns = ["images", "sigma", "photo", *names] + (["ours - CBM3D"] if margin else [])
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in rows:
        scores = row["per image"]
        for i, image in enumerate(row["images"]):
            cells = [f"{scores[name][i]:.2f}" for name in names]
            cells += [f"{scores['ours'][i] - scores['CBM3D'][i]:+.2f}"] if margin else []
            lines.append(f"| {row['set']} | {row['sigma']} | {image} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def changes(rows: list[dict]) -> str:
    """Ours minus previous per row to 0.001 dB, and, if the rows hold CBM3D, the shipping rule's
    verdict: the worst row's margin to CBM3D rises and no row falls more than SHIPPING_TOLERANCE."""
    lines = [f"{r['set']} {r['sigma']}: ours - previous {r['ours'][0] - r['previous'][0]:+.3f} dB" for r in rows]
    fall = min(r["ours"][0] - r["previous"][0] for r in rows)
    if all("CBM3D" in r for r in rows):
        before, after = (min(r[name][0] - r["CBM3D"][0] for r in rows) for name in ("previous", "ours"))
        holds = after > before and fall >= -SHIPPING_TOLERANCE
        lines.append(
            f"shipping rule: worst margin to CBM3D {before:+.3f} -> {after:+.3f} dB, largest fall {fall:+.3f} dB: "
            + ("holds" if holds else "fails")
        )
    return "\n".join(lines)


def machine() -> str:
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument(
        "--sets", nargs="+", choices=tuple(PHOTO_SETS), default=["demo-test", "standard"], help="photo sets"
    )
    parser.add_argument("--sigmas", nargs="+", choices=SIGMAS, default=list(SIGMAS), help="noise levels (rows)")
    parser.add_argument("--weights", type=Path, default=C.CHECKPOINT_PATH, help="the 'ours' columns (default: shipped)")
    parser.add_argument("--previous", type=Path, help="add a 'previous' column for these weights (true sigma)")
    parser.add_argument("--methods", nargs="+", metavar="NAME", help="only these columns (default: all)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="of previous and ours (default fp32)")
    parser.add_argument(
        "--per-image", action="store_true", help="also a table of every photo's PSNR, and ours minus CBM3D"
    )
    args = parser.parse_args()
    sets = {name: PHOTO_SETS[name]() for name in args.sets}
    sigmas = {name: SIGMAS[name] for name in args.sigmas}
    options = {"weights": args.weights, "previous": args.previous, "only": args.methods, "precision": args.precision}
    try:
        rows, per_megapixel = evaluate(sets, sigmas, **options)
    except CheckpointError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"\nPSNR (dB) / SSIM, mean per image; {datetime.date.today()}, {machine()}\n")
    print(markdown(rows, per_megapixel))
    if args.per_image:
        print("\nPSNR (dB) per photo\n\n" + per_image(rows))
    if args.previous is not None and all("ours" in row and "previous" in row for row in rows):
        if "CBM3D" not in per_megapixel and all("CBM3D" in row for row in rows):
            print(f"\n(CBM3D's scores from {CBM3D_CACHE.relative_to(C.ROOT_DIR)}, bm3d {bm3d_version()})")
        print("\n" + changes(rows))


if __name__ == "__main__":
    main()
