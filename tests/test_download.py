import shutil
import sys
import types
import zipfile

import pytest

import utils.download as download
from utils.download import DownloadError, download_afhq, import_afhq


def fake_kagglehub(monkeypatch, result=None, error=None):
    def dataset_download(handle):
        assert handle == "andrewmvd/animal-faces"
        if error:
            raise error
        return str(result)

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=dataset_download))


def test_kagglehub_download_is_copied_into_place(tmp_path, afhq_folder, monkeypatch):
    cache = tmp_path / "cache"
    shutil.copytree(afhq_folder, cache / "afhq")  # kagglehub's folder holds afhq/ inside
    fake_kagglehub(monkeypatch, result=cache)
    dest = download_afhq(tmp_path / "data" / "afhq")
    assert sorted(p.name for p in (dest / "train").iterdir()) == ["cat", "dog", "wild"]
    assert (cache / "afhq" / "train" / "cat").is_dir()  # the source is copied, not moved


def test_offline_without_cli_gives_one_clear_message(tmp_path, monkeypatch):
    fake_kagglehub(monkeypatch, error=ConnectionError("Failed to resolve host"))
    monkeypatch.setattr(download.shutil, "which", lambda name: None)
    with pytest.raises(DownloadError) as caught:
        download_afhq(tmp_path / "afhq")
    message = str(caught.value)
    assert "\n" not in message
    assert "Failed to resolve host" in message and "kaggle command is not installed" in message
    assert "--from" in message and "andrewmvd/animal-faces" in message
    assert not (tmp_path / "afhq").exists()


def test_falls_back_to_the_kaggle_cli(tmp_path, afhq_folder, monkeypatch):
    fake_kagglehub(monkeypatch, error=RuntimeError("no credentials"))
    monkeypatch.setattr(download.shutil, "which", lambda name: "/usr/bin/kaggle")

    def fake_run(command, **kwargs):
        assert command[:3] == ["kaggle", "datasets", "download"]
        target = command[command.index("-p") + 1]
        shutil.copytree(afhq_folder, f"{target}/afhq")
        return types.SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(download.subprocess, "run", fake_run)
    assert (download_afhq(tmp_path / "afhq") / "val" / "dog").is_dir()


def test_import_from_a_zip_leaves_the_zip_alone(tmp_path, afhq_folder):
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in afhq_folder.rglob("*.png"):
            zf.write(path, f"afhq/{path.relative_to(afhq_folder)}")
    size = archive.stat().st_size
    dest = import_afhq(archive, tmp_path / "data" / "afhq")
    assert len(list(dest.rglob("*.png"))) == 90
    assert archive.stat().st_size == size
    with pytest.raises(DownloadError, match="already exists"):
        import_afhq(archive, dest)


def test_import_rejects_what_is_not_afhq(tmp_path, image_folder):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DownloadError, match="neither a zip archive nor a folder"):
        import_afhq(tmp_path / "notes.txt", tmp_path / "afhq")
    with pytest.raises(DownloadError, match="no AFHQ layout"):
        import_afhq(image_folder, tmp_path / "afhq")
    assert not (tmp_path / "afhq").exists()
