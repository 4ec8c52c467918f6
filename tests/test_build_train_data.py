import io
import json
import tarfile

from PIL import Image

from tests.conftest import make_folder
from utils.build_train_data import EVALUATION_PHOTOS, SKIMAGE_PHOTOS, WALLPAPER_PHOTOS, build


def ar_archive(members: dict[str, bytes]) -> bytes:
    """A .deb is an `ar` archive; write one with the members given."""
    out = bytearray(b"!<arch>\n")
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode() + data
        if len(data) % 2:
            out += b"\n"
    return bytes(out)


def fake_wallpaper_deb(path):
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        for name in (*WALLPAPER_PHOTOS, "SomeDrawing"):
            for size in ((64, 40), (320, 200)):  # the largest file of each wallpaper is taken
                image = io.BytesIO()
                Image.new("RGB", size, "teal").save(image, format="JPEG")
                info = tarfile.TarInfo(f"./usr/share/wallpapers/{name}/contents/images/{size[0]}x{size[1]}.jpg")
                info.size = len(image.getvalue())
                tar.addfile(info, io.BytesIO(image.getvalue()))
    path.write_bytes(ar_archive({"debian-binary": b"2.0\n", "data.tar": tar_bytes.getvalue()}))
    return path


def test_builds_the_training_set_without_evaluation_images(tmp_path):
    demo = make_folder(tmp_path / "demo", {"cat": 16, "dog": 12, "wild": 8})
    manifest = build(fake_wallpaper_deb(tmp_path / "w.deb"), tmp_path / "out", demo)
    assert manifest["counts"] == {"train": 12 + len(WALLPAPER_PHOTOS) + len(SKIMAGE_PHOTOS), "val": 12, "test": 12}
    train, held_out = set(manifest["train"]), set(manifest["val"]) | set(manifest["test"])
    assert not train & held_out
    assert all(p.startswith("demo/") for p in held_out)
    assert not any(any(e.split(".")[0] in p for e in EVALUATION_PHOTOS) for p in train)
    assert "wallpapers/SomeDrawing.png" not in train
    assert Image.open(tmp_path / "out" / "wallpapers" / "Kite.png").size == (320, 200)
    assert json.loads((tmp_path / "out" / "split.json").read_text()) == manifest
    sources = (tmp_path / "out" / "SOURCES.md").read_text()
    assert "GPL-2+" in sources and "scikit-image" in sources
