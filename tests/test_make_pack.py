"""The GPU pack: 4:4:4 JPEG at the fidelity asked for, within its size budget."""

import json

import numpy as np
from PIL import Image

from tests.test_build_train_data import photo
from utils.make_pack import make_pack, psnr_uint8


def pretrain_set(root, count=6):
    files = {"train": [f"src/t{i}.png" for i in range(count)] + ["src/tiny.png"], "val": ["src/v0.png"], "test": []}
    (root / "src").mkdir(parents=True)
    for i, rel in enumerate(files["train"][:-1] + files["val"]):
        photo(i, (300, 200)).save(root / rel)
    photo(99, (60, 50)).save(root / "src/tiny.png")  # smaller than a training crop
    photo(98, (900, 700)).save(root / "src/v0.png")  # validation photos travel as their centre crop
    (root / "split.json").write_text(json.dumps(files))
    return files


def test_pack_keeps_fidelity_and_budget(tmp_path):
    files = pretrain_set(tmp_path / "pretrain")
    manifest = make_pack(tmp_path / "pretrain", tmp_path / "pack", budget_bytes=10**8, min_psnr=45.0)
    assert manifest["train_photos"] == 6 and manifest["left_out"] == ["src/tiny.png"]
    for entry in manifest["files"]:
        packed = np.asarray(Image.open(tmp_path / "pack" / entry["file"]).convert("RGB"))
        source = Image.open(tmp_path / "pretrain" / entry["source"]).convert("RGB")
        if entry["file"].startswith("val/"):
            assert packed.shape[:2] == (512, 512)
            source = source.crop((194, 94, 706, 606))
        assert psnr_uint8(packed, np.asarray(source)) >= 45.0
    small = make_pack(tmp_path / "pretrain", tmp_path / "small", budget_bytes=manifest["bytes"] // 2)
    assert small["bytes"] <= manifest["bytes"] // 2 and small["val_photos"] == 1
    assert 0 < small["train_photos"] < 6 and len(small["left_out"]) == 7 - small["train_photos"]
    assert sum(f.stat().st_size for f in (tmp_path / "small").rglob("*.jpg")) == small["bytes"]
    assert len(files["train"]) == manifest["set_train_photos"]


def test_a_smaller_pack_over_a_larger_one_leaves_only_its_own_files(tmp_path):
    pretrain_set(tmp_path / "pretrain")
    large = make_pack(tmp_path / "pretrain", tmp_path / "pack", budget_bytes=10**8)
    small = make_pack(tmp_path / "pretrain", tmp_path / "pack", budget_bytes=large["bytes"] // 2)
    on_disk = {p.relative_to(tmp_path / "pack").as_posix() for p in (tmp_path / "pack").rglob("*.jpg")}
    assert on_disk == {e["file"] for e in small["files"]} and small["train_photos"] < large["train_photos"]
