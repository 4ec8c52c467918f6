"""The denoise command line: outputs, metadata, and one test per kind of bad input."""

import io
import struct
import zlib

import numpy as np
import png
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

import model.denoise as denoise_module
from model.checkpoint import load_model, save_checkpoint
from model.denoise import denoise_array, fastest_layout, main
from model.photo_io import turn
from model.unet import UNet


@pytest.fixture
def checkpoint(tmp_path):
    model = UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False)
    return save_checkpoint(tmp_path / "tiny.pth", model=model.state_dict(), model_config=model.config)


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path)
    return path


def run(capsys, *args):
    """Run the CLI in-process; returns (exit code, stdout + stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
        if isinstance(exit.code, str):
            print(exit.code)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_writes_denoised_pngs_and_keeps_exif_and_icc(tmp_path, capsys, checkpoint):
    source = tmp_path / "tagged.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    exif[0x010F] = "TestCam"  # camera maker
    Image.new("RGB", (40, 30), "orange").save(source, exif=exif, icc_profile=b"fake-icc-profile")
    before = source.read_bytes()
    code, output = run(capsys, source, "-o", tmp_path / "out", "--checkpoint", checkpoint, "--sigma", "20")
    assert code == 0, output
    result = Image.open(tmp_path / "out" / "tagged_denoised.png")
    assert result.size == (30, 40)  # the orientation is applied to the pixels ...
    assert result.getexif()[0x0112] == 1  # ... and the tag says "upright"
    assert result.getexif()[0x010F] == "TestCam"  # the rest of the EXIF stays
    assert result.info["icc_profile"] == b"fake-icc-profile"
    assert source.read_bytes() == before


def test_a_profile_goes_with_the_colours_it_describes(tmp_path, capsys, checkpoint):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cmyk = srgb[:16] + b"CMYK" + srgb[20:]  # the header names the colour space
    pixels = np.random.default_rng(6).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "web.jpg", icc_profile=srgb)
    Image.fromarray(pixels).convert("CMYK").save(tmp_path / "print.jpg", icc_profile=cmyk)
    code, output = run(
        capsys, tmp_path / "web.jpg", tmp_path / "print.jpg", "-o", tmp_path / "out", "--checkpoint", checkpoint
    )
    assert code == 0, output
    assert Image.open(tmp_path / "out" / "web_denoised.png").info["icc_profile"] == srgb
    converted = Image.open(tmp_path / "out" / "print_denoised.png")
    assert converted.mode == "RGB" and "icc_profile" not in converted.info  # CMYK profile, RGB pixels: dropped


def test_a_rotated_photo_gives_what_its_upright_copy_gives(tmp_path, capsys, checkpoint):
    pixels = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=exif)
    ImageOps.exif_transpose(Image.open(tmp_path / "turned.png")).save(tmp_path / "upright.png")
    code, output = run(
        capsys,
        tmp_path / "turned.png",
        tmp_path / "upright.png",
        "-o",
        tmp_path / "out",
        "--checkpoint",
        checkpoint,
        "--sigma",
        "20",
    )
    assert code == 0, output
    turned, upright = (np.asarray(Image.open(tmp_path / "out" / f"{n}_denoised.png")) for n in ("turned", "upright"))
    assert turned.shape == (40, 30, 3) and np.array_equal(turned, upright)


def test_16_bit_png_stays_16_bit_with_its_profile_and_orientation(tmp_path, capsys, checkpoint):
    pixels = np.random.default_rng(1).integers(0, 65536, (20, 24, 3), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    exif[0x010F] = "TestCam"
    encoded = io.BytesIO()
    png.Writer(24, 20, bitdepth=16, greyscale=False).write(encoded, pixels.reshape(20, -1))
    chunks = list(png.Reader(bytes=encoded.getvalue()).chunks())
    metadata = [(b"iCCP", b"icc\0\0" + zlib.compress(b"fake-icc")), (b"eXIf", exif.tobytes()[6:])]
    source = tmp_path / "deep.png"
    with open(source, "wb") as file:
        png.write_chunks(file, chunks[:1] + metadata + chunks[1:])
    code, output = run(capsys, source, "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 0, output
    result = tmp_path / "out" / "deep_denoised.png"
    width, height, rows, meta = png.Reader(filename=str(result)).asDirect()
    assert (width, height, meta["bitdepth"], meta["planes"]) == (20, 24, 16, 3)  # turned upright
    with Image.open(result) as image:
        assert image.info["icc_profile"] == b"fake-icc"
        assert image.getexif()[0x0112] == 1 and image.getexif()[0x010F] == "TestCam"


def deep_outputs(tmp_path, capsys, checkpoint, source, formats):
    """Denoise `source` into each format; return {format: (output pixels, CLI output)}."""
    results = {}
    for suffix in formats:
        code, output = run(capsys, source, "-o", tmp_path / suffix, "--format", suffix, "--checkpoint", checkpoint)
        assert code == 0, output
        result = tmp_path / suffix / f"{source.stem}_denoised.{suffix}"
        pixels = tifffile.imread(result) if suffix == "tif" else np.asarray(Image.open(result))  # float colour
        results[suffix] = (pixels.astype(np.float64), output)
    return results


@pytest.mark.parametrize("mode", ["I;16", "F"])
def test_16_bit_and_float_gray_reach_every_format_on_their_scale(tmp_path, capsys, checkpoint, mode):
    rng = np.random.default_rng(3)
    top = 65535 if mode == "I;16" else 1.0
    pixels = (rng.random((24, 32)) * top).astype(np.uint16 if mode == "I;16" else np.float32)
    source = tmp_path / "deep.tif"
    Image.fromarray(pixels).save(source)
    outputs = deep_outputs(tmp_path, capsys, checkpoint, source, ["tif", "png", "jpg", "webp"])
    full, output = outputs["tif"]  # TIFF holds both as they are
    assert "written as" not in output
    kind = "16-bit" if mode == "I;16" else "float"
    for suffix in ("jpg", "webp"):  # 8 bits, scaled from the full range, not clipped to white or black
        eight_bit, output = outputs[suffix]
        gray = eight_bit if eight_bit.ndim == 2 else eight_bit.mean(axis=2)
        assert np.abs(gray - full * 255 / top).mean() < 3
        assert f"{kind} pixels written as 8-bit {suffix.upper()}" in output
    png_pixels, output = outputs["png"]
    assert np.abs(png_pixels - full * 65535 / top).max() <= 0.5 + 1e-6  # 16 bits (float rounded to them)
    assert ("float pixels written as 16-bit PNG" in output) == (mode == "F")


def test_16_bit_colour_png_becomes_8_bit_jpeg(tmp_path, capsys, checkpoint):
    ramp = np.linspace(0, 1, 24)[None, :, None] * np.linspace(0.2, 1, 20)[:, None, None]
    pixels = (ramp * [65535, 40000, 20000]).astype(np.uint16)  # smooth: JPEG's colour subsampling keeps it
    source = tmp_path / "deep.png"
    with open(source, "wb") as file:
        png.Writer(24, 20, bitdepth=16, greyscale=False).write(file, pixels.reshape(20, -1))
    eight_bit, output = deep_outputs(tmp_path, capsys, checkpoint, source, ["jpg"])["jpg"]
    assert "16-bit pixels written as 8-bit JPG" in output
    assert run(capsys, source, "-o", tmp_path / "png", "--checkpoint", checkpoint)[0] == 0
    _, _, rows, _ = png.Reader(filename=str(tmp_path / "png" / "deep_denoised.png")).asDirect()
    sixteen_bit = np.vstack([np.asarray(row, np.float64) for row in rows]).reshape(20, 24, 3)
    assert np.abs(eight_bit - sixteen_bit / 257).mean() < 3


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_a_deep_colour_tiff_keeps_its_depth_profile_and_orientation(tmp_path, capsys, checkpoint, dtype):
    top = 65535 if dtype == np.uint16 else 1.0
    ramp = np.linspace(0, 1, 24)[None, :, None] * np.linspace(0.2, 1, 20)[:, None, None]
    pixels = (ramp * np.array([1.0, 0.6, 0.3]) * top).astype(dtype)
    source = tmp_path / "scan.tif"  # what a raw developer or a scanner writes: Pillow would make it 8-bit
    orientation = (274, 3, 1, 6, True)  # the TIFF tag: "rotate 90 degrees clockwise to display"
    tifffile.imwrite(source, pixels, photometric="rgb", iccprofile=b"fake-icc", extratags=[orientation])
    before = source.read_bytes()
    outputs = deep_outputs(tmp_path, capsys, checkpoint, source, ["tif", "png", "jpg"])
    with tifffile.TiffFile(tmp_path / "tif" / "scan_denoised.tif") as tiff:
        page = tiff.pages[0]
        full = page.asarray().astype(np.float64)
        assert page.dtype == dtype and full.shape == (24, 20, 3)  # orientation 6 applied: turned upright
        assert page.tags["InterColorProfile"].value == b"fake-icc"
    model = fastest_layout(load_model(checkpoint, "cpu")[0])
    expected = denoise_array(np.rot90(pixels, -1), model).astype(np.float64)  # the API on the upright pixels
    assert np.abs(full - expected).max() <= 1e-4 * top
    png_pixels, output = outputs["png"]
    assert np.abs(png_pixels - full * 255 / top).max() <= 1  # Pillow reads 16-bit colour PNG as 8 bits
    assert ("float pixels written as 16-bit PNG" in output) == (dtype == np.float32)
    assert np.abs(outputs["jpg"][0] - full * 255 / top).mean() < 3
    assert source.read_bytes() == before


@pytest.mark.parametrize("orientation", range(1, 9))
def test_deep_arrays_turn_upright_as_pillow_turns_images(orientation):
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    image = Image.fromarray(pixels)
    image.getexif()[0x0112] = orientation
    np.testing.assert_array_equal(turn(pixels, orientation), np.asarray(ImageOps.exif_transpose(image)))


def test_float_tiff_on_another_scale_is_one_error_naming_the_file(tmp_path, capsys, checkpoint, photo):
    hdr = tmp_path / "hdr.tif"
    tifffile.imwrite(hdr, np.full((20, 24, 3), 40.0, np.float32), photometric="rgb")
    check_one_failure(capsys, tmp_path, checkpoint, photo, hdr, "float pixels range from 40 to 40")


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_a_folder_of_phone_photos_in_heic_is_denoised(tmp_path, capsys, checkpoint, suffix):
    pixels = np.random.default_rng(5).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    folder = tmp_path / "phone"
    folder.mkdir()
    Image.fromarray(pixels).save(folder / "IMG_0001.HEIC", quality=90)  # no EXIF: pillow-heif says None
    code, output = run(capsys, folder, "-o", tmp_path / "out", "--checkpoint", checkpoint, "--format", suffix)
    assert code == 0, output
    assert "1 of 1 images denoised" in output and "skipped" not in output
    assert Image.open(tmp_path / "out" / f"IMG_0001_denoised.{suffix}").size == (40, 32)


def test_an_unexpected_failure_costs_one_photo_not_the_batch(tmp_path, capsys, checkpoint, photo, monkeypatch):
    second = photo.with_name("second.png")
    Image.open(photo).save(second)
    original = denoise_module.denoise_file

    def failing_once(model, source, *args, **kwargs):
        if source == photo:
            raise RuntimeError("out of memory")
        return original(model, source, *args, **kwargs)

    monkeypatch.setattr(denoise_module, "denoise_file", failing_once)
    code, output = run(capsys, photo, second, "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 1 and f"{photo}: unexpected RuntimeError: out of memory" in output
    assert "1 of 2 images denoised" in output and (tmp_path / "out" / "second_denoised.png").exists()


def test_a_camera_raw_file_says_to_develop_it_first(tmp_path, capsys, checkpoint, photo):
    raw = tmp_path / "DSC_0042.NEF"
    raw.write_bytes(b"MM\x00\x2a" + bytes(64))  # a TIFF-like header Pillow cannot decode as a photo
    check_one_failure(capsys, tmp_path, checkpoint, photo, raw, "cannot read image")
    _, output = run(capsys, raw, "-o", tmp_path / "alone", "--checkpoint", checkpoint)
    assert "camera RAW file: develop it to TIFF or PNG first" in output


def test_existing_output_needs_overwrite(tmp_path, capsys, checkpoint, photo):
    args = (photo, "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert run(capsys, *args)[0] == 0
    code, output = run(capsys, *args)
    assert code == 1 and "exists; pass overwrite" in output
    assert run(capsys, *args, "--overwrite")[0] == 0


def test_skip_existing_goes_on_with_an_interrupted_batch(tmp_path, capsys, checkpoint, photo):
    second = photo.with_name("second.png")
    Image.open(photo).save(second)
    out = tmp_path / "out"
    assert run(capsys, photo, "-o", out, "--checkpoint", checkpoint)[0] == 0  # "interrupted" after one photo
    before = (out / "photo_denoised.png").stat().st_mtime_ns
    code, output = run(capsys, photo, second, "-o", out, "--checkpoint", checkpoint, "--skip-existing")
    assert code == 0, output
    assert "1 of 2 images denoised" in output and "kept 1 existing output(s)" in output
    assert (out / "photo_denoised.png").stat().st_mtime_ns == before and (out / "second_denoised.png").exists()
    code, output = run(capsys, photo, "-o", out, "--checkpoint", checkpoint, "--skip-existing", "--overwrite")
    assert code == 2 and "not allowed with argument" in output


def check_one_failure(capsys, tmp_path, checkpoint, photo, bad, message):
    code, output = run(capsys, photo, bad, "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 1
    assert f"{bad}: {message}" in output
    assert "1 of 2 images denoised" in output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo_denoised.png"]


def test_not_an_image(tmp_path, capsys, checkpoint, photo):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    check_one_failure(capsys, tmp_path, checkpoint, photo, bad, "cannot read image")


def test_empty_file(tmp_path, capsys, checkpoint, photo):
    bad = tmp_path / "empty.jpg"
    bad.touch()
    check_one_failure(capsys, tmp_path, checkpoint, photo, bad, "empty file (0 bytes)")


def test_32_bit_integers_beyond_16_bits_are_refused_not_clipped(tmp_path, capsys, checkpoint, photo):
    bad = tmp_path / "counts.tif"
    Image.fromarray(np.arange(64 * 48, dtype=np.int32).reshape(48, 64) * 40).save(bad)
    check_one_failure(capsys, tmp_path, checkpoint, photo, bad, "integer pixels from 0 to 122840, outside 0-65535")


def test_truncated_file(tmp_path, capsys, checkpoint, photo):
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(photo.read_bytes()[:300])
    check_one_failure(capsys, tmp_path, checkpoint, photo, bad, "cannot read image")


@pytest.mark.parametrize("size", [(1, 1), (0, 0)])
def test_tiny_or_empty_image(tmp_path, capsys, checkpoint, photo, size):
    bad = tmp_path / "tiny.png"
    if size == (0, 0):  # Pillow cannot write it; a PNG header that says 0x0
        header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
        chunk = b"IHDR" + header
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)))
        check_one_failure(capsys, tmp_path, checkpoint, photo, bad, "image is 0x0")
    else:
        Image.new("RGB", size).save(bad)
        check_one_failure(capsys, tmp_path, checkpoint, photo, bad, "image is 1x1")


def test_huge_image_is_refused_from_its_header_without_decoding(tmp_path, capsys, checkpoint, photo):
    bad = tmp_path / "huge.png"  # a 20000 x 20000 PNG header: decoding it would need 1.2 GB
    chunk = b"IHDR" + struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)))
    check_one_failure(capsys, tmp_path, checkpoint, photo, bad, "image is 20000x20000 (400 MP), above the limit")


@pytest.mark.parametrize("sigma", ["-5", "200"])
def test_sigma_out_of_range_writes_nothing(tmp_path, capsys, checkpoint, photo, sigma):
    code, output = run(capsys, photo, "-o", tmp_path / "out", "--checkpoint", checkpoint, "--sigma", sigma)
    assert code == 1 and "sigma must be within [0, 0.5]" in output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [(("--device", "tpu"), "unknown device 'tpu'"), (("--tile", "100"), "need 0 <= 2 * overlap < tile")],
)
def test_bad_settings_are_one_error_before_any_work(tmp_path, capsys, checkpoint, photo, option, message):
    code, output = run(capsys, photo, "-o", tmp_path / "out", "--checkpoint", checkpoint, *option)
    assert code == 1 and output.strip().splitlines() == [output.strip().splitlines()[0]]
    assert output.startswith("error: ") and message in output
    assert not (tmp_path / "out").exists()


def test_a_sigma_on_the_wrong_scale_gets_a_note(tmp_path, capsys, checkpoint, photo):
    code, output = run(capsys, photo, "-o", tmp_path / "out", "--checkpoint", checkpoint, "--sigma", "0.1")
    assert code == 0 and "note: --sigma is on the 0-255 scale: 0.1 is almost no noise" in output
    code, output = run(capsys, photo, "-o", tmp_path / "again", "--checkpoint", checkpoint, "--sigma", "25")
    assert code == 0 and "note: --sigma" not in output


def test_output_folder_that_is_not_writable(tmp_path, capsys, checkpoint, photo):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, output = run(capsys, photo, "-o", blocker / "out", "--checkpoint", checkpoint)
    assert code == 1 and "output folder is not writable" in output


def test_same_file_twice_is_denoised_once(tmp_path, capsys, checkpoint, photo):
    code, output = run(
        capsys, photo, photo.parent / ".." / "in" / "photo.jpg", "-o", tmp_path / "out", "--checkpoint", checkpoint
    )
    assert code == 0 and "named twice" in output and "1 of 1 images denoised" in output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo_denoised.png"]
