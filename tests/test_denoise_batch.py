"""Denoising every photo a person has: a folder of unusual entries, every Pillow mode, 16-bit
depth, and arrays the API must refuse clearly. No input file may change."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.checkpoint import save_checkpoint
from model.denoise import denoise, denoise_array
from model.photo_batch import collect, output_names
from model.unet import UNet
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False).eval()


@pytest.fixture
def checkpoint(tmp_path, model):
    path = tmp_path / "small.pth"
    save_checkpoint(path, model=model.state_dict(), model_config=model.config)
    return path


def picture(seed=0, size=(48, 40)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8))


def hashes(folder):
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def messy_folder(tmp_path):
    """Good photos beside every kind of entry that cannot be read."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    gray16 = (np.random.default_rng(1).random((40, 48)) * 65535).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")
    Image.fromarray(gray16).save(folder / "gray16.tif")
    picture(2).save(folder / "photo.png")
    picture(2).save(folder / "photo.tif")
    picture(3).save(folder / "anim.gif", save_all=True, append_images=[picture(5)])  # two frames
    picture(4).save(folder / "sub" / "nested.jpg")
    (folder / "notes.txt").write_text("not a photo")
    (folder / "._photo.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata")  # AppleDouble, beside photo.png
    (folder / ".thumbnails").mkdir()
    picture(6).save(folder / ".thumbnails" / "photo.png")
    (folder / "truncated.png").write_bytes((folder / "photo.png").read_bytes()[:200])
    os.symlink("loop2", folder / "loop1")
    os.symlink("loop1", folder / "loop2")
    os.symlink("nowhere.png", folder / "dangling.png")
    os.symlink("..", folder / "sub" / "up")
    os.mkfifo(folder / "fifo.png")
    return folder


def run_cli(*args):
    command = [sys.executable, "-m", "model.denoise", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_messy_folder_denoises_every_readable_photo_and_names_each_bad_entry(tmp_path, messy_folder, checkpoint):
    before = hashes(messy_folder)
    result = run_cli(messy_folder, messy_folder / "loop1", "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    expected = {
        f"error: {messy_folder / 'dangling.png'}: broken symbolic link (to nowhere.png)",
        f"error: {messy_folder / 'fifo.png'}: not a regular file (a FIFO)",
        f"error: {messy_folder / 'loop1'}: symbolic link loop",
        f"error: {messy_folder / 'loop2'}: symbolic link loop",
        f"error: {messy_folder / 'sub' / 'up'}: symbolic link loop (back to a folder above it)",
    }
    assert expected <= set(errors)
    assert any(line.startswith(f"error: {messy_folder / 'truncated.png'}: cannot read image") for line in errors)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [
        "anim_denoised.png",  # GIFs in folders are read, as when named directly
        "gray16_png_denoised.png",  # colliding stems get the source extension
        "gray16_tif_denoised.png",
        "nested_denoised.png",
        "photo_png_denoised.png",
        "photo_tif_denoised.png",
    ]
    assert "skipped 3 hidden or non-image file(s)" in result.stdout  # notes.txt, ._photo.png, .thumbnails
    assert f"note: {messy_folder / 'anim.gif'}: 2 frames; only the first is denoised" in result.stderr
    for name in ("gray16_png", "gray16_tif"):  # 16-bit gray in, 16-bit gray out
        assert Image.open(tmp_path / "out" / f"{name}_denoised.png").mode == "I;16"
    assert hashes(messy_folder) == before


def test_an_output_folder_inside_the_input_folder_is_not_searched(tmp_path, checkpoint):
    folder = tmp_path / "photos"
    folder.mkdir()
    picture().save(folder / "cat.jpg")
    first = run_cli(folder, "-o", folder / "denoised", "--checkpoint", checkpoint)
    again = run_cli(folder, "-o", folder / "denoised", "--checkpoint", checkpoint, "--overwrite")
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert f"note: {folder / 'denoised'}: the output folder; not searched" in again.stderr
    assert "1 of 1 images denoised" in again.stdout
    assert [p.name for p in (folder / "denoised").iterdir()] == ["cat_denoised.png"]


def test_output_names_stay_distinct():
    sources = [Path(p) for p in ("a/x.png", "b/x.png", "a/x.tif", "a/y.jpg")]
    names = [p.name for p in output_names(sources, Path("out"), "png")]
    assert len(set(names)) == 4 and "y_denoised.png" in names and "x_tif_denoised.png" in names


def test_an_output_path_that_is_a_file_is_one_clear_error(tmp_path, messy_folder, checkpoint):
    (tmp_path / "taken").write_text("x")
    result = run_cli(messy_folder / "photo.png", "-o", tmp_path / "taken", "--checkpoint", checkpoint)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'taken'}: is a file; -o names the folder the outputs go to"
    ]


def test_a_bad_checkpoint_is_one_line(tmp_path, messy_folder):
    bad = tmp_path / "bad.pth"
    torch.save({"x": Path("a")}, bad)  # a pickled object: loading it would run code
    result = run_cli(messy_folder / "photo.png", "-o", tmp_path / "out", "--checkpoint", bad)
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: not a PyTorch checkpoint, or one that would run code when loaded"
    ]


def test_collect_reports_a_missing_item():
    batch = collect([Path("no/such/photo.png")], Path("out"), "png")
    assert batch.problems == ["no/such/photo.png: no such file or folder"] and batch.pairs == []


MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"]
MODES += ["I;16", "I;16B", "I;16L", "I", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_every_pillow_mode_of_photos_is_denoised(model, mode):
    gray16 = (np.random.default_rng(5).random((40, 48)) * 65535).astype(np.uint16)
    if mode in ("I;16B", "I;16L"):
        image = Image.frombytes(mode, (48, 40), gray16.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    elif mode in ("I;16", "I"):
        image = Image.fromarray(gray16 if mode == "I;16" else gray16.astype(np.int32))
    elif mode == "F":
        image = Image.fromarray(gray16.astype(np.float32) / 65535)
    elif mode == "PA":
        image = picture().convert("P").convert("PA")
    elif mode in ("La", "RGBa"):  # premultiplied alpha, from the straight-alpha mode
        image = picture().convert(mode.upper()).convert(mode)
    else:
        image = picture().convert(mode)
    out = denoise(image, model, 0.05)
    expected = {"I;16B": "I;16", "I;16L": "I;16", "I": "I;16", "1": "RGB", "P": "RGB", "PA": "RGBA"}
    expected |= {"CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "La": "LA", "RGBa": "RGBA"}
    assert out.mode == expected.get(mode, mode) and out.size == image.size
    if mode.startswith("I"):  # 16-bit stays 16-bit and close to its input (the model is tiny and untrained)
        assert np.abs(np.asarray(out).astype(float) - gray16).mean() < 0.2 * 65535


def test_nan_and_infinity_are_refused_before_any_work(model):
    image = np.full((32, 32, 3), 0.5, np.float32)
    for bad in (np.nan, np.inf):
        image[3, 4, 1] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            denoise_array(image, model, 0.1)


def test_floats_on_another_scale_are_refused_unless_clipped(model):
    rng = np.random.default_rng(0)
    on_255 = (rng.random((32, 32, 3)) * 255).astype(np.float32)
    with pytest.raises(ValueError, match=r"scale them to \[0, 1\].*clip=True"):
        denoise_array(on_255, model, 0.1)
    assert denoise_array(on_255, model, 0.1, clip=True).max() <= 1
    noisy = (0.5 + rng.normal(0, 0.3, (32, 32, 3))).astype(np.float32)  # noise beyond [0, 1] is fine
    assert denoise_array(noisy, model, 0.3).shape == noisy.shape


def test_every_numpy_dtype_works_or_is_refused_by_name(model):
    for dtype in (np.uint8, np.uint16, np.float16, np.float32, np.float64):
        assert denoise_array(np.zeros((16, 16, 3), dtype), model, 0.1).dtype == dtype
    for dtype in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint32, np.uint64, np.complex64):
        with pytest.raises(ValueError, match=f"unsupported pixel type {np.dtype(dtype).name}"):
            denoise_array(np.zeros((16, 16, 3), dtype), model, 0.1)


def test_strength_scales_the_noise_level(model):
    noisy = (0.5 + np.random.default_rng(1).normal(0, 0.1, (32, 32, 3))).astype(np.float32)
    half = denoise_array(noisy, model, 0.1, strength=0.5)
    np.testing.assert_array_equal(half, denoise_array(noisy, model, 0.05))
    with pytest.raises(ValueError, match="strength must be > 0"):
        denoise_array(noisy, model, 0.1, strength=0)


def test_precision_choices(model):
    noisy = (0.5 + np.random.default_rng(2).normal(0, 0.1, (32, 32, 3))).astype(np.float32)
    auto = denoise_array(noisy, model, 0.1, precision="auto")
    assert np.abs(auto - denoise_array(noisy, model, 0.1, precision="fp32")).max() < 0.05
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, auto"):
        denoise_array(noisy, model, 0.1, precision="fp8")
