"""Build the offline training set of the pretrained denoiser (data/pretrain) and its split.

The shipped checkpoint must be reproducible without Kaggle, so it trains on real photographs
that this repo or the package registries provide (`utils/photo_catalog.py` names them):

1. download each Debian package once into data/debs (`apt-get download`, no install);
2. read the named photos out of it (plain files, Qt .rcc archives, Eet .edj containers);
3. clean them: downscale by the source's integer factor (box average), so the camera's noise
   and the compression artifacts vanish; the noise level (model/noise_level.py) is measured
   before and after; a photo still above 1/255 is downscaled by twice the factor, and dropped
   if that does not bring it below; store as lossless PNG;
4. remove near-duplicates (perceptual hash): the same photo ships in several packages and
   among the demo photos; the larger copy stays, and a copy of an evaluation photo or of a
   demo val/test photo is never trained on;
5. split: the demo test split stays the test set; validation is the demo val split plus
   `LARGE_VAL` large photos of the new sources, never trained on; everything else trains.

    python -m utils.build_train_data            # resumable: a second run does no work
    python -m utils.build_train_data --debs DIR  # .deb files already downloaded into DIR

Writes data/pretrain/<source>/*.png, photos.json (every candidate, kept or not, and why),
split.json and SOURCES.md (file, package, version, path inside it, author, license).
Packages reserved for independent evaluation (utils/packages.py) are refused by name.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from constants import DATA_DIR, DEMO_DIR, PRETRAIN_DIR, SEED
from model.config_flags import make_parser
from model.files import atomic_write, write_json_atomic
from model.noise_level import estimate_sigma
from model.split import default_split
from utils.packages import deb_files, deb_version, download, largest_jpeg, parse_credits, read_rcc, refuse_reserved
from utils.photo_catalog import EVALUATION_PHOTOS, SKIMAGE_PHOTOS, SOURCES, Source

OUT_DIR = PRETRAIN_DIR
DEBS_DIR = DATA_DIR / "debs"
MAX_NOISE = 1 / 255  # a clean target may hold at most this much noise of its own
HASH_DISTANCE = 10  # of 64 bits: closer perceptual hashes are the same photo
LARGE_VAL = 20  # validation photos from the new sources
LARGE_VAL_MIN_PIXELS = 400_000


@dataclass
class Photo:
    file: str  # under OUT_DIR
    package: str
    version: str
    path: str  # inside the package (archive:member for containers)
    author: str
    license: str
    source_url: str = ""
    width: int = 0
    height: int = 0
    scale: int = 1  # downscaled by this factor
    noise_before: float = 0.0  # estimated sigma, in 1/255 units
    noise_after: float = 0.0
    phash: str = ""
    held_out: str = ""  # "val" / "test" for demo photos of those splits, "evaluation" for eval photos
    dropped: str = ""  # why it is not used, if it is not


def clean(image: Image.Image, scale: int) -> tuple[Image.Image, int, float, float]:
    """Downscale by `scale` (box average), and by twice that if the photo's own noise is still above
    MAX_NOISE; return (photo, factor used, noise before, noise after), noise in 1/255."""
    image = image.convert("RGB")
    before = estimate_sigma(np.asarray(image, np.float32) / 255) * 255
    for factor in (scale, 2 * scale):
        small = image.reduce(factor) if factor > 1 else image
        after = estimate_sigma(np.asarray(small, np.float32) / 255) * 255 if factor > 1 else before
        if after <= MAX_NOISE * 255:
            break
    return small, factor, before, after


def perceptual_hash(image: Image.Image) -> str:
    """64-bit DCT hash of the 32x32 gray thumbnail (pHash): survives resizing and recompression."""
    from scipy.fft import dctn

    gray = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), np.float64)
    low = dctn(gray, norm="ortho")[:8, :8].flatten()[1:]  # the DC term says only how bright it is
    bits = low > np.median(low)
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hash_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def source_photos(source: Source, deb: Path) -> Iterator[tuple[str, str, dict, Image.Image]]:
    """(output name, path inside the package, credits, image) for every photo the source names."""
    prefix = f"{source.folder}/"
    if source.kind == "wallpaper":  # usr/share/wallpapers/<Name>/contents/images/<W>x<H>.jpg: the largest
        files = deb_files(deb, lambda p: p.startswith(prefix) and p.split("/")[3] in source.files and "/images/" in p)
        for name in source.files:
            path = max((p for p in files if p.split("/")[3] == name), key=lambda p: len(files[p]))
            yield name, path, {}, Image.open(io.BytesIO(files[path]))
        return
    wanted = {prefix + name for name in source.files}
    files = deb_files(deb, wanted.__contains__)
    missing = wanted - files.keys()
    if missing:
        raise ValueError(f"{deb.name}: not found: {', '.join(sorted(missing))}")
    for path in sorted(files):
        name = path.removeprefix(prefix)
        if source.kind == "file":
            yield Path(name).stem, path, {}, Image.open(io.BytesIO(files[path]))
        elif source.kind == "edj":
            yield Path(name).stem, path, {}, largest_jpeg(files[path])
        else:  # rcc: photos of the wanted folders, with their README's credits
            resources = read_rcc(files[path])
            for member in sorted(m for m in resources if m.endswith((".webp", ".jpg", ".jpeg", ".png"))):
                folder, file_name = member.rsplit("/", 1)
                if source.subfolders and folder.rsplit("/", 1)[-1] not in source.subfolders:
                    continue
                image = Image.open(io.BytesIO(resources[member]))
                if min(image.size) < source.min_side:
                    continue
                credits = readme_credits(resources, member)
                out_name = f"{Path(name).stem}/{folder.rsplit('/', 1)[-1]}/{Path(file_name).stem}"
                yield out_name, f"{path}:{member}", credits, image


def readme_credits(resources: dict[str, bytes], member: str) -> dict[str, str]:
    """Author, license and source of an archive member, from the nearest README above it that names it."""
    folder = member
    while "/" in folder:
        folder = folder.rsplit("/", 1)[0]
        readme = resources.get(f"{folder}/README", b"").decode("utf-8", "replace")
        credits = parse_credits(readme).get(member.removeprefix(f"{folder}/"))
        if credits:
            return credits
    return {}


def local_photos(demo_dir: Path, seed: int) -> Iterator[tuple[Photo, Image.Image]]:
    """The embedded demo photos (with their split) and the scikit-image sample photos."""
    import skimage.data

    split = default_split(demo_dir, seed)
    for part in ("train", "val", "test"):
        for rel in split[part]:
            photo = Photo(
                f"demo/{Path(rel).with_suffix('.png').as_posix()}",
                "embedded demo set",
                "",
                f"data/demo/{rel}",
                "see data/demo/ATTRIBUTION.md",
                "see data/demo/ATTRIBUTION.md",
                held_out="" if part == "train" else part,
            )
            yield photo, Image.open(demo_dir / rel)
    folder = Path(skimage.data.__file__).parent
    for name in SKIMAGE_PHOTOS + EVALUATION_PHOTOS[:3]:
        photo = Photo(
            f"skimage/{Path(name).stem}.png",
            "scikit-image",
            skimage.__version__,
            f"skimage/data/{name}",
            "see skimage/data/README.txt",
            "see skimage/data/README.txt",
            held_out="evaluation" if name in EVALUATION_PHOTOS else "",
        )
        yield photo, Image.open(folder / name)


def evaluation_photos() -> Iterator[tuple[Photo, Image.Image]]:
    """scikit-learn's two photos: only their hashes are needed, so duplicates are kept out."""
    from sklearn.datasets import load_sample_image

    for name in EVALUATION_PHOTOS[3:]:
        photo = Photo("", "scikit-learn", "", name, "", "", held_out="evaluation")
        yield photo, Image.fromarray(load_sample_image(name))


def process(photo: Photo, image: Image.Image, scale: int, out_dir: Path) -> Photo:
    """Clean the photo, measure it, and write it (unless it is dropped or only an evaluation photo)."""
    small, photo.scale, photo.noise_before, photo.noise_after = clean(image, scale)
    photo.width, photo.height = small.size
    photo.phash = perceptual_hash(small)
    if photo.held_out:
        pass  # held-out photos stay in their split, noisy or not, and keep their copies out of training
    elif not photo.license:
        photo.dropped = "no license stated"
    elif photo.noise_after > MAX_NOISE * 255:
        photo.dropped = f"noise {photo.noise_after:.2f}/255 after downscaling by {photo.scale}"
    if photo.file and not photo.dropped:
        with atomic_write(out_dir / photo.file, "wb", ".png") as file:
            small.save(file, format="PNG")
    return photo


def deduplicate(photos: list[Photo]) -> None:
    """Mark all but one copy of each photo as dropped: a held-out copy wins, else the largest."""
    ranked = sorted(photos, key=lambda p: (not p.held_out, -(p.width * p.height), p.package == "embedded demo set"))
    kept: list[Photo] = []
    for photo in ranked:
        if photo.dropped:
            continue
        twin = next((k for k in kept if hash_distance(k.phash, photo.phash) <= HASH_DISTANCE), None)
        if twin is None:
            kept.append(photo)
        else:
            photo.dropped = f"duplicate of {twin.file or twin.path}"


def make_split(photos: list[Photo], out_dir: Path, seed: int) -> dict:
    """Test: the demo test split. Val: the demo val split plus LARGE_VAL large new photos. Train: the rest."""
    usable = [p for p in photos if not p.dropped and p.file]
    large = sorted(
        p.file
        for p in usable
        if not p.held_out and p.package != "embedded demo set" and p.width * p.height >= LARGE_VAL_MIN_PIXELS
    )
    large_val = set(random.Random(seed).sample(large, min(LARGE_VAL, len(large))))
    split = {
        "train": sorted(p.file for p in usable if not p.held_out and p.file not in large_val),
        "val": sorted(p.file for p in usable if p.held_out == "val") + sorted(large_val),
        "test": sorted(p.file for p in usable if p.held_out == "test"),
    }
    return {
        "root": out_dir.as_posix(),
        "seed": seed,
        "retain": 1.0,
        "counts": {part: len(files) for part, files in split.items()},
        "val_large": sorted(large_val),
        **split,
    }


def write_sources(photos: list[Photo], manifest: dict, path: Path) -> None:
    part = {file: name for name in ("train", "val", "test") for file in manifest[name]}
    lines = [
        "# Pretraining photos: sources and licenses",
        "",
        "Written by `python -m utils.build_train_data`. Noise: estimated sigma (1/255) of the original and of",
        "the stored, downscaled photo (model/noise_level.py).",
        "",
        "| file | split | package | version | path in the package | author | license | source | scale "
        "| noise before / after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in sorted(photos, key=lambda p: p.file):
        if p.file in part:
            lines.append(
                f"| {p.file} | {part[p.file]} | {p.package} | {p.version} | {p.path} | {p.author} | {p.license} "
                f"| {p.source_url} | 1/{p.scale} | {p.noise_before:.2f} / {p.noise_after:.2f} |"
            )
    with atomic_write(path, "w", ".md") as file:
        file.write("\n".join(lines) + "\n")


def summary(photos: list[Photo], manifest: dict) -> str:
    by_file = {p.file: p for p in photos}
    train = [by_file[f] for f in manifest["train"]]
    megapixels = sum(p.width * p.height for p in train) / 1e6
    per_source = Counter(p.package for p in train)
    return (
        f"{len(train)} training photos, {megapixels:.1f} MP; val {manifest['counts']['val']}, "
        f"test {manifest['counts']['test']}; per source: " + ", ".join(f"{k} {v}" for k, v in per_source.most_common())
    )


def build(
    out_dir: Path = OUT_DIR,
    debs_dir: Path = DEBS_DIR,
    demo_dir: Path = DEMO_DIR,
    sources: tuple[Source, ...] = SOURCES,
    seed: int = SEED,
    with_local: bool = True,
) -> dict:
    """Build (or finish building) the set; return the split manifest. Photos already processed are
    read from photos.json, so a second run downloads, decodes and writes nothing."""
    for source in sources:
        refuse_reserved(source.package)
    record_path = out_dir / "photos.json"
    done: dict[str, list[dict]] = {}
    if record_path.exists():
        done = json.loads(record_path.read_text())
    # a source is redone when any of its catalog fields changes (a photo added, a license corrected)
    jobs = [(f"{s.package} {hashlib.sha1(repr(s).encode()).hexdigest()[:12]}", s) for s in sources]
    if with_local:
        jobs.append(("local", None))
    listed = {key for key, _ in jobs}
    done = {key: rows for key, rows in done.items() if key in listed}  # forget sources no longer listed
    for key, source in tqdm([j for j in jobs if j[0] not in done], desc="sources", unit="source"):
        photos = []
        if source is None:
            for photo, image in [*local_photos(demo_dir, seed), *evaluation_photos()]:
                photos.append(process(photo, image, 1, out_dir))
        else:
            deb = download(source.package, debs_dir)
            version = deb_version(deb)
            for name, path, credits, image in tqdm(source_photos(source, deb), desc=source.package, leave=False):
                photo = Photo(
                    f"{source.package}/{name}.png",
                    source.package,
                    version,
                    path,
                    credits.get("author", source.author),
                    credits.get("license", source.license),
                    credits.get("source", ""),
                )
                photos.append(process(photo, image, source.scale, out_dir))
        done[key] = [asdict(p) for p in photos]
        write_json_atomic(record_path, done)  # resumable: a source is done once it is recorded
    photos = [Photo(**row) for key, _ in jobs for row in done[key]]
    deduplicate(photos)
    manifest = make_split(photos, out_dir, seed)
    write_json_atomic(out_dir / "split.json", manifest)
    write_sources(photos, manifest, out_dir / "SOURCES.md")
    manifest["summary"] = summary(photos, manifest)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    parser.add_argument("--debs", type=Path, default=DEBS_DIR, help="where .deb files are kept")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out, args.debs)
    except (RuntimeError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {args.out}: {manifest['summary']}")


if __name__ == "__main__":
    main()
