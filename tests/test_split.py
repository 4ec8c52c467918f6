import subprocess
import sys

import pytest

from model.files import write_json_atomic
from model.split import SPLITS, default_split, load_split, make_split
from tests.conftest import ROOT, make_folder


def snapshot(folder):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_split_is_disjoint_complete_and_leaves_files_alone(image_folder):
    before = snapshot(image_folder)
    manifest = make_split(image_folder, retain=1.0, test_size=6, val_size=6)
    sets = [set(manifest[name]) for name in SPLITS]
    assert sum(map(len, sets)) == len(set().union(*sets)) == 36  # no image in two splits
    assert manifest["counts"] == {"train": 24, "val": 6, "test": 6}
    assert snapshot(image_folder) == before


def test_split_is_reproducible_and_depends_on_the_seed(image_folder):
    assert make_split(image_folder, 1.0, 6, seed=3) == make_split(image_folder, 1.0, 6, seed=3)
    assert make_split(image_folder, 1.0, 6, seed=3)["test"] != make_split(image_folder, 1.0, 6, seed=4)["test"]


def test_split_is_stratified_by_class(image_folder):
    manifest = make_split(image_folder, retain=1.0, test_size=9)
    classes = [path.split("/")[0] for path in manifest["test"]]
    assert {label: classes.count(label) for label in set(classes)} == {"cat": 4, "dog": 3, "wild": 2}


def test_the_default_split_of_a_small_folder_still_trains_on_most_of_it(tmp_path, image_folder):
    assert default_split(image_folder)["counts"] == {"train": 26, "val": 5, "test": 5}  # 15% each of 36
    few = make_folder(tmp_path / "few", {"cat": 3, "dog": 2})
    assert default_split(few)["counts"] == {"train": 3, "val": 1, "test": 1}
    many = make_folder(tmp_path / "many", {"cat": 60, "dog": 40})
    assert default_split(many)["counts"] == {"train": 76, "val": 12, "test": 12}  # DEMO_TEST_SIZE caps it


def test_the_split_command_writes_the_default_split_unless_given_numbers(tmp_path, image_folder):
    def split_command(*options):
        command = [sys.executable, "-m", "utils.split_data", image_folder, "-o", tmp_path / "split.json", *options]
        result = subprocess.run(list(map(str, command)), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return load_split(tmp_path / "split.json")

    assert split_command() == default_split(image_folder)
    assert split_command("--test-size", "3")["counts"] == {"train": 30, "val": 3, "test": 3}  # all kept: not AFHQ


def test_afhq_layout_keeps_a_fraction_and_draws_test_from_val(afhq_folder):
    manifest = make_split(afhq_folder, retain=0.5, test_size=6)
    assert manifest["counts"] == {"train": 30, "val": 9, "test": 6}
    assert all(path.startswith("train/") for path in manifest["train"])
    assert all(path.startswith("val/") for path in manifest["val"] + manifest["test"])
    assert not set(manifest["val"]) & set(manifest["test"])


def test_empty_or_missing_folder_gives_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        make_split(tmp_path / "empty", retain=1.0, test_size=2)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        make_split(tmp_path / "missing", retain=1.0, test_size=2)


def test_a_split_that_leaves_nothing_to_train_on_says_what_to_change(image_folder):
    with pytest.raises(ValueError, match=r"too few images .*'train': 0.*hold out fewer or keep more"):
        make_split(image_folder, retain=0.1, test_size=50)


def test_manifest_round_trip_and_bad_manifest(tmp_path, image_folder):
    manifest = make_split(image_folder, retain=1.0, test_size=4)
    write_json_atomic(tmp_path / "split.json", manifest)
    assert load_split(tmp_path / "split.json") == manifest
    (tmp_path / "bad.json").write_text('{"train": []}')
    with pytest.raises(ValueError, match="bad.json: not a split manifest"):
        load_split(tmp_path / "bad.json")
