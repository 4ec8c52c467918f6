"""Build the offline training set for the pretrained denoiser (data/pretrain) and its split.

The pretrained checkpoint must be reproducible without Kaggle, so it trains on real photos
that this repo or the package registries provide:

- the embedded demo photos of the train and val splits (the demo test split stays unseen:
  `benchmarks/eval_quality.py` reports on it);
- the photographs among Debian's `plasma-workspace-wallpapers` (GPL-2+), downscaled so that
  their JPEG artifacts vanish and they behave like clean images;
- scikit-image's sample photos, except chelsea (also `cat`), coffee and astronaut, which are
  evaluation images (scikit-learn's only photos, china and flower, are evaluation images too).

Debian packages reserved for independent evaluation are never used: tuxpaint-stamps-*,
mate-backgrounds, kphotoalbum, lomiri-wallpapers-* and palapeli-data.

    python -m utils.build_train_data                # runs `apt-get download` for the wallpapers
    python -m utils.build_train_data --deb plasma-workspace-wallpapers_5.27.5-2_all.deb

Writes PNGs under data/pretrain/<source>/, data/pretrain/SOURCES.md and
data/pretrain/split.json (train: everything above; val and test: the demo split's).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from PIL import Image

from constants import DATA_DIR, DEMO_DIR, SEED
from utils.build_demo_data import read_deb_member
from utils.files import atomic_write, write_json_atomic
from utils.split_data import default_split

OUT_DIR = DATA_DIR / "pretrain"
WALLPAPER_PACKAGE = "plasma-workspace-wallpapers"
WALLPAPER_LICENSE = "GPL-2+ (Debian package plasma-workspace-wallpapers, KDE contributors)"
# the wallpapers of that package that are photographs (the others are renders and drawings)
WALLPAPER_PHOTOS = (
    "BytheWater",
    "ColorfulCups",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Honeywave",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
    "Volna",
)
WALLPAPER_SIDE = 1280  # long side after downscaling
# scikit-image sample photos that are not evaluation images
SKIMAGE_PHOTOS = (
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "coins.png",
    "moon.png",
)
EVALUATION_PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "china.jpg", "flower.jpg")


def save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb", ".png") as file:
        image.save(file, format="PNG")


def downscale(image: Image.Image, side: int) -> Image.Image:
    """Shrink so the long side is `side` (by an integer factor when possible, which averages noise best)."""
    scale = side / max(image.size)
    if scale >= 1:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)


def largest_wallpapers(deb: Path) -> dict[str, bytes]:
    """name -> bytes of the largest image file of each photo wallpaper in the .deb."""
    found: dict[str, tuple[int, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(read_deb_member(deb.read_bytes(), "data.tar"))) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if "wallpapers" not in parts or "images" not in parts or not member.isfile():
                continue
            name = parts[parts.index("wallpapers") + 1]
            if name in WALLPAPER_PHOTOS and member.size > found.get(name, (0, b""))[0]:
                found[name] = (member.size, tar.extractfile(member).read())
    missing = set(WALLPAPER_PHOTOS) - set(found)
    if missing:
        raise ValueError(f"{deb}: wallpapers not found: {', '.join(sorted(missing))}")
    return {name: data for name, (_, data) in sorted(found.items())}


def skimage_photos() -> dict[str, Image.Image]:
    """The sample files that ship inside the scikit-image wheel (gray ones become 3 equal channels)."""
    import skimage.data

    assert not set(SKIMAGE_PHOTOS) & set(EVALUATION_PHOTOS)
    folder = Path(skimage.data.__file__).parent
    return {Path(name).stem: Image.open(folder / name).convert("RGB") for name in SKIMAGE_PHOTOS}


def build(deb: Path, out_dir: Path = OUT_DIR, demo_dir: Path = DEMO_DIR, seed: int = SEED) -> dict:
    """Write the training photos and the split manifest; return the manifest."""
    rows: list[tuple[str, str]] = []  # (relative path, source and license)
    demo_split = default_split(demo_dir, seed)
    demo_credits = "data/demo/ATTRIBUTION.md"
    for split in ("train", "val", "test"):
        for rel in demo_split[split]:
            image = Image.open(demo_dir / rel).convert("RGB")
            target = f"demo/{Path(rel).with_suffix('.png').as_posix()}"
            save_png(image, out_dir / target)
            rows.append((target, f"embedded demo photo ({split} split), see {demo_credits}"))
    for name, data in largest_wallpapers(deb).items():
        image = downscale(Image.open(io.BytesIO(data)).convert("RGB"), WALLPAPER_SIDE)
        save_png(image, out_dir / f"wallpapers/{name}.png")
        rows.append((f"wallpapers/{name}.png", WALLPAPER_LICENSE))
    for name, image in skimage_photos().items():
        save_png(image, out_dir / f"skimage/{name}.png")
        rows.append((f"skimage/{name}.png", "scikit-image sample data (see skimage/data/README.txt)"))

    def demo_part(split: str) -> list[str]:
        return sorted(f"demo/{Path(rel).with_suffix('.png').as_posix()}" for rel in demo_split[split])

    train = sorted(
        {path for path, _ in rows if not path.startswith("demo/")} | set(demo_part("train")),
    )
    manifest = {
        "root": out_dir.as_posix(),
        "seed": seed,
        "retain": 1.0,
        "counts": {"train": len(train), "val": len(demo_part("val")), "test": len(demo_part("test"))},
        "train": train,
        "val": demo_part("val"),
        "test": demo_part("test"),
    }
    write_json_atomic(out_dir / "split.json", manifest)
    lines = ["# Pretraining photos: sources and licenses", "", "| file | source and license |", "| --- | --- |"]
    lines += [f"| {path} | {source} |" for path, source in rows]
    with atomic_write(out_dir / "SOURCES.md", "w", ".md") as file:
        file.write("\n".join(lines) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deb", type=Path, help=f"an already downloaded {WALLPAPER_PACKAGE} .deb")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        deb = args.deb
        if deb is None:
            try:
                subprocess.run(["apt-get", "download", WALLPAPER_PACKAGE], cwd=tmp, check=True)
            except (OSError, subprocess.CalledProcessError) as error:
                raise SystemExit(
                    f"error: could not download {WALLPAPER_PACKAGE} ({error}); fetch the .deb by hand and pass --deb"
                ) from None
            deb = next(Path(tmp).glob(f"{WALLPAPER_PACKAGE}_*.deb"))
        manifest = build(deb, args.out)
    print(f"wrote {args.out}: {manifest['counts']}")


if __name__ == "__main__":
    main()
