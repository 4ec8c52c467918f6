"""Rebuild the embedded demo dataset (data/demo) from Debian's `gcompris-qt-data` package.

The demo set ships in git, so users never need this script; it exists so that anyone can
check where each photo came from and rebuild the folder byte for byte. The package stores
its photos in Qt resource archives (.rcc) next to README files that give each photo's
author, source and license; we keep every animal photo, shrink it (the originals were
sharpened and WebP-compressed, and downscaling hides those artifacts), and write an
attribution table.

    python -m utils.build_demo_data            # runs `apt-get download gcompris-qt-data`
    python -m utils.build_demo_data --deb gcompris-qt-data_3.1-2_all.deb
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from PIL import Image

from constants import DEMO_DIR
from model.config_flags import make_parser
from utils.packages import parse_credits, read_deb_member, read_rcc

PACKAGE = "gcompris-qt-data"
RCC_DIR = "usr/share/gcompris-qt/rcc"
# archive name -> class folder in the demo set
ARCHIVES = {
    "explore_farm_animals.rcc": "farm",
    "erase.rcc": "wild",
    "explore_world_animals.rcc": "wild",
    "categorization.rcc": "fish",
}
MAX_SIDE = 512  # AFHQ's resolution; also keeps the folder small
JPEG_QUALITY = 95


def shrink(webp: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(webp)).convert("RGB")
    scale = MAX_SIDE / max(image.size)
    if scale < 1:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def build(deb_path: Path, out_dir: Path) -> int:
    """Write the demo photos and ATTRIBUTION.md into `out_dir`; return the photo count."""
    data_tar = read_deb_member(deb_path.read_bytes(), "data.tar")
    rows = []
    with tarfile.open(fileobj=io.BytesIO(data_tar)) as tar:
        for archive, label in ARCHIVES.items():
            member = tar.extractfile(f"./{RCC_DIR}/{archive}")
            files = read_rcc(member.read())
            for path in sorted(p for p in files if p.endswith(".webp")):
                folder, name = path.rsplit("/", 1)
                if archive == "categorization.rcc" and not folder.endswith("/fishes"):
                    continue
                credit = parse_credits(files[f"{folder}/README"].decode())[name]
                target = out_dir / label / f"{Path(name).stem}.jpg"
                while target.exists() or any(r[0] == target for r in rows):
                    target = target.with_stem(target.stem + "_2")
                rows.append((target, credit, archive))
                target.parent.mkdir(parents=True, exist_ok=True)
                shrink(files[path]).save(target, quality=JPEG_QUALITY, subsampling=0)
    lines = [
        "# Demo photos: sources and licenses",
        "",
        f"Extracted from Debian's `{PACKAGE}` package (GCompris) by `utils/build_demo_data.py`,",
        f"downscaled to at most {MAX_SIDE} px and saved as JPEG. Authors and licenses come from",
        "the README beside each image in the package. CC-BY / CC-BY-SA photos may be shared",
        "with this attribution; modified CC-BY-SA photos stay under CC-BY-SA.",
        "",
        "| file | author | license | source | package archive |",
        "| --- | --- | --- | --- | --- |",
    ]
    for target, credit, archive in rows:
        rel = target.relative_to(out_dir).as_posix()
        lines.append(f"| {rel} | {credit['author']} | {credit['license']} | {credit['source']} | {archive} |")
    (out_dir / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(rows)


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--deb", type=Path, help="an already downloaded gcompris-qt-data .deb")
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="where the demo photos go")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out}: not empty; remove it first to rebuild the demo set")
    with tempfile.TemporaryDirectory() as tmp:
        deb = args.deb
        if deb is None:
            subprocess.run(["apt-get", "download", PACKAGE], cwd=tmp, check=True)
            deb = next(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        print(f"wrote {build(deb, args.out)} photos to {args.out}")


if __name__ == "__main__":
    main()
