import json

import numpy as np
import pytest
from PIL import Image

from model.dataset import PairedImageDataset
from model.split import make_split
from utils.add_noise import add_noise


def test_pairs_are_written_reproducibly_and_load_as_a_paired_dataset(tmp_path, image_folder):
    manifest = make_split(image_folder, retain=1.0, test_size=6)
    assert add_noise(manifest, "test", tmp_path / "a", sigma=0.1) == []
    add_noise(manifest, "test", tmp_path / "b", sigma=0.1)
    files_a = sorted((tmp_path / "a").rglob("*.png"))
    assert len(files_a) == 12
    for file_a in files_a:
        assert file_a.read_bytes() == (tmp_path / "b" / file_a.relative_to(tmp_path / "a")).read_bytes()
    assert json.loads((tmp_path / "a" / "noise.json").read_text())["sigma"] == 0.1
    dataset = PairedImageDataset(tmp_path / "a")
    noisy, clean, sigma = dataset[0]
    assert sigma.item() == pytest.approx(0.1)
    assert 0.05 < (noisy - clean).std().item() < 0.15
    clean_file = tmp_path / "a" / "labels" / f"{dataset.names[0]}.png"
    original = image_folder / f"{dataset.names[0]}.png"
    assert np.array_equal(np.asarray(Image.open(clean_file)), np.asarray(Image.open(original)))


def test_existing_output_is_not_overwritten_without_the_flag(tmp_path, image_folder):
    manifest = make_split(image_folder, retain=1.0, test_size=3)
    add_noise(manifest, "test", tmp_path / "out")
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.png")}
    with pytest.raises(FileExistsError, match="--overwrite"):
        add_noise(manifest, "test", tmp_path / "out", sigma=0.3)
    assert before == {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.png")}
    add_noise(manifest, "test", tmp_path / "out", sigma=0.3, overwrite=True)


def test_a_bad_file_is_reported_and_the_rest_written(tmp_path, image_folder):
    manifest = make_split(image_folder, retain=1.0, test_size=3)
    broken = image_folder / manifest["test"][0]
    broken.write_bytes(b"garbage")
    failures = add_noise(manifest, "test", tmp_path / "out")
    assert len(failures) == 1 and manifest["test"][0] in failures[0]
    assert len(list((tmp_path / "out" / "images").rglob("*.png"))) == 2
