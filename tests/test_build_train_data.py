"""The training-set builder on small fake packages: a .deb holding an .edj-like container, one
holding a Qt .rcc archive with a README of credits, and one of plain JPEGs. No network."""

import io
import json
import struct
import tarfile

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_folder
from utils import build_train_data
from utils.build_train_data import build, hash_distance, perceptual_hash, readme_credits
from utils.packages import ReservedPackageError, largest_jpeg, read_rcc
from utils.photo_catalog import Source


def photo(seed: int, size=(320, 240), noise: float = 0.0) -> Image.Image:
    """A smooth, detailed colour field (a stand-in for a clean photo), optionally noisy."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(coarse, np.float64) + rng.normal(0, noise, (size[1], size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 98} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def ar_archive(members: dict[str, bytes]) -> bytes:
    """A .deb is an `ar` archive; write one with the members given."""
    out = bytearray(b"!<arch>\n")
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode() + data
        if len(data) % 2:
            out += b"\n"
    return bytes(out)


def fake_deb(folder, package: str, files: dict[str, bytes]):
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"./{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = folder / f"{package}_1.0-1_all.deb"
    path.write_bytes(ar_archive({"debian-binary": b"2.0\n", "data.tar": tar_bytes.getvalue()}))
    return path


def make_rcc(files: dict[str, bytes]) -> bytes:
    """A Qt resource archive (format 1, uncompressed) with the files in one folder, `res`."""
    names, data, nodes = bytearray(), bytearray(), []

    def name(text: str) -> int:
        offset = len(names)
        names.extend(struct.pack(">HI", len(text), 0) + text.encode("utf-16-be"))
        return offset

    nodes.append(struct.pack(">IHII", 0, 2, 1, 1))  # root: one child, at index 1
    nodes.append(struct.pack(">IHII", name("res"), 2, len(files), 2))
    for file_name, blob in files.items():
        nodes.append(struct.pack(">IHHHI", name(file_name), 0, 0, 0, len(data)))
        data.extend(struct.pack(">I", len(blob)) + blob)
    tree = b"".join(nodes)
    offsets = (20, 20 + len(tree), 20 + len(tree) + len(data))  # tree, data, names after the 20-byte header
    return b"qres" + struct.pack(">IIII", 1, *offsets) + tree + data + names


README = """Copyright: Ann Photographer
Source: https://example.org/deer
License: CC0-1.0
Files: deer.webp

Copyright: Bob
License: CC-BY-4.0
Files:
lake.webp
"""


@pytest.fixture
def packages(tmp_path):
    """Three fake packages in a debs folder, the catalog naming their photos, and a demo folder."""
    debs = tmp_path / "debs"
    debs.mkdir()
    edj = b"Eet" + encode(photo(1, (80, 60)), "JPEG") + b"\0\0" + encode(photo(1, (640, 480)), "JPEG") + b"tail"
    fake_deb(debs, "fake-edj", {"usr/share/bg/Forest.edj": edj, "usr/share/bg/Render.edj": edj})
    rcc = make_rcc(
        {
            "README": README.encode(),
            "deer.webp": encode(photo(2, (400, 300)), "WEBP"),
            "lake.webp": encode(photo(3, (400, 300)), "WEBP"),
            "icon.webp": encode(photo(4, (64, 64)), "WEBP"),
            "unlicensed.webp": encode(photo(8, (400, 300)), "WEBP"),  # no README entry: never used
        }
    )
    fake_deb(debs, "fake-rcc", {"usr/share/app/rcc/game.rcc": rcc})
    demo = make_folder(tmp_path / "demo", {"cat": 16, "dog": 12, "wild": 8}, size=(96, 128))
    plain = {
        "usr/share/pics/clean.png": encode(photo(5, (400, 300))),
        "usr/share/pics/noisy.png": encode(photo(6, (400, 300), noise=25)),
        "usr/share/pics/copy_of_deer.png": encode(photo(2, (200, 150))),  # the rcc's deer, smaller
        "usr/share/pics/drawing.png": encode(photo(7)),
    }
    fake_deb(debs, "fake-plain", plain)
    catalog = (
        Source("fake-edj", "usr/share/bg", ("Forest.edj",), kind="edj", license="BSD-2-clause", author="E"),
        Source("fake-rcc", "usr/share/app/rcc", ("game.rcc",), kind="rcc", min_side=100),
        Source("fake-plain", "usr/share/pics", ("clean.png", "noisy.png", "copy_of_deer.png"), license="GPL", scale=1),
    )
    return debs, demo, catalog


def test_container_readers():
    small, large = photo(1, (40, 30)), photo(1, (160, 120))
    assert largest_jpeg(b"x" + encode(small, "JPEG") + b"y" + encode(large, "JPEG")).size == (160, 120)
    files = read_rcc(make_rcc({"a.txt": b"hello", "b.bin": b"\x00\x01"}))
    assert files == {"res/a.txt": b"hello", "res/b.bin": b"\x00\x01"}


def test_credits_come_from_the_nearest_readme_that_names_the_file():
    readme = b"Copyright: Ann\nLicense: CC0-1.0\nFiles: sub/deer.webp\n"
    resources = {"res/README": readme, "res/sub/deer.webp": b"", "res/sub/README": b"Copyright: Bob\nFiles: x.webp\n"}
    assert readme_credits(resources, "res/sub/deer.webp")["author"] == "Ann"
    assert readme_credits(resources, "res/sub/other.webp") == {}


def test_perceptual_hash_matches_resized_copies_only():
    a = perceptual_hash(photo(2, (400, 300)))
    assert hash_distance(a, perceptual_hash(photo(2, (200, 150)))) <= build_train_data.HASH_DISTANCE
    assert hash_distance(a, perceptual_hash(photo(3, (400, 300)))) > build_train_data.HASH_DISTANCE


def test_builds_clean_deduplicated_photos_with_sources(tmp_path, packages, monkeypatch):
    debs, demo, catalog = packages
    out = tmp_path / "pretrain"
    manifest = build(out, debs, demo, catalog)
    train, val, test = (set(manifest[p]) for p in ("train", "val", "test"))
    # photo selection: only the named photos; the rcc's icon is too small; the unnamed render and drawing stay out
    assert "fake-edj/Forest.png" in train | val
    assert not any(name in f for f in train | val for name in ("Render", "drawing", "icon", "unlicensed"))
    # downscaling: the edj's largest JPEG (640x480) halved; a noisy photo that stays noisy is dropped
    assert Image.open(out / "fake-edj/Forest.png").size == (320, 240)
    assert "fake-plain/noisy.png" not in train | val
    # dedupe: the deer ships twice; the larger copy (from the rcc) stays
    assert "fake-rcc/game/res/deer.png" in train | val and "fake-plain/copy_of_deer.png" not in train | val
    # the demo test split is the test set, never trained on; evaluation photos are never trained on
    assert test and all(f.startswith("demo/") for f in test) and not test & train
    assert not any(name in f for f in train for name in ("chelsea", "coffee", "astronaut"))
    # every used file has a SOURCES.md row with its package, version, path and license
    rows = (out / "SOURCES.md").read_text().splitlines()
    deer = next(r for r in rows if r.startswith("| fake-rcc/game/res/deer.png"))
    assert "| fake-rcc | 1.0-1 | usr/share/app/rcc/game.rcc:res/deer.webp | Ann Photographer | CC0-1.0 |" in deer
    assert all(any(r.startswith(f"| {f} |") for r in rows) for f in train | val | test)
    assert json.loads((out / "split.json").read_text())["train"] == manifest["train"]

    # a second run does no work: nothing is downloaded, decoded or written again
    def no_work(*args, **kwargs):
        raise AssertionError("a second run repeated work")

    monkeypatch.setattr(build_train_data, "process", no_work)
    monkeypatch.setattr(build_train_data, "download", no_work)
    assert build(out, debs, demo, catalog)["train"] == manifest["train"]


def test_reserved_packages_are_refused_by_name(tmp_path, packages):
    debs, demo, _ = packages
    for name in ("tuxpaint-stamps-animals", "tuxpaint-data", "mate-backgrounds", "palapeli-data"):
        with pytest.raises(ReservedPackageError, match=name):
            build(tmp_path / "out", debs, demo, (Source(name, "usr/share", ("a.jpg",)),), with_local=False)
