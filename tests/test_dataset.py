import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from model.dataset import ImageReadError, NoisyImageDataset, PairedImageDataset, list_images, load_image


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.new("RGB", (60, 20), "red").save(path, exif=exif)
    assert load_image(path).shape == (3, 60, 20)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA"])
def test_any_colour_mode_becomes_rgb(tmp_path, mode):
    path = tmp_path / f"image_{mode}.png"
    Image.new("RGB", (10, 8), (200, 100, 50)).convert(mode).save(path)
    image = load_image(path)
    assert image.shape == (3, 8, 10) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1


def test_16_bit_png_keeps_its_precision(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 9), 1000, dtype=np.uint16)).save(path)
    assert load_image(path)[0, 0, 0].item() == pytest.approx(1000 / 65535, abs=1e-7)


def test_16_bit_colour_and_float_tiffs_keep_their_precision(tmp_path):
    deep = np.zeros((8, 9, 3), np.uint16)
    deep[..., 1] = 1000  # green only: a channel mix-up shows
    tifffile.imwrite(tmp_path / "deep.tif", deep, photometric="rgb")
    tifffile.imwrite(tmp_path / "float.tif", deep.astype(np.float32) / 65535, photometric="rgb")
    for name in ("deep.tif", "float.tif"):
        image = load_image(tmp_path / name)
        assert image.shape == (3, 8, 9) and image.dtype == torch.float32
        assert image[:, 0, 0].tolist() == pytest.approx([0, 1000 / 65535, 0], abs=1e-7)


@pytest.mark.parametrize(("content", "problem"), [(b"", "empty file"), (None, "at least 8x8 pixels are needed")])
def test_files_that_are_no_photo_say_why(tmp_path, content, problem):
    path = tmp_path / "odd.png"
    if content is None:
        Image.new("RGB", (5, 4)).save(path)
    else:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=f"odd.png: .*{problem}"):
        load_image(path)


def test_truncated_jpeg_is_named_in_the_error(tmp_path):
    path = tmp_path / "broken.jpg"
    Image.new("RGB", (64, 64), "blue").save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="broken.jpg"):
        load_image(path)


def test_eval_noise_is_deterministic_and_unclipped(image_folder):
    paths = sorted(image_folder.rglob("*.png"))[:3]
    first, second = NoisyImageDataset(paths, sigma=0.5), NoisyImageDataset(paths, sigma=0.5)
    noisy, clean, sigma = first[1]
    assert torch.equal(noisy, second[1][0])
    assert sigma.item() == 0.5
    assert noisy.min() < 0 and noisy.max() > 1  # sigma 0.5 leaves [0, 1] unless clipped
    assert (noisy - clean).std().item() == pytest.approx(0.5, rel=0.05)
    clipped, _, _ = NoisyImageDataset(paths, sigma=0.5, clip=True)[1]
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_training_items_are_random_crops_with_sigma_from_the_range(image_folder):
    paths = sorted(image_folder.rglob("*.png"))[:2]
    dataset = NoisyImageDataset(paths, sigma=(0.0, 0.2), crop_size=16, train=True, repeats=3)
    assert len(dataset) == 6
    items = [dataset[epoch * len(dataset)] for epoch in range(5)]  # image 0 in five epochs
    assert all(noisy.shape == (3, 16, 16) for noisy, _, _ in items)
    assert all(0 <= sigma.item() <= 0.2 for _, _, sigma in items)
    assert not torch.equal(items[0][0], items[1][0])
    assert all(torch.equal(a, b) for a, b in zip(dataset[5], dataset[5], strict=True))  # seeded by the index


def test_image_smaller_than_the_crop_is_padded(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (12, 8), "green").save(path)
    noisy, clean, _ = NoisyImageDataset([path], crop_size=32, train=True)[0]
    assert clean.shape == (3, 32, 32)
    assert torch.allclose(clean, clean[:, :1, :1].expand_as(clean))


def test_a_corrupt_file_is_skipped_with_a_warning(image_folder):
    bad = image_folder / "cat" / "corrupt.jpg"
    bad.write_bytes(b"not a jpeg at all")
    good = sorted(image_folder.rglob("*.png"))[0]
    dataset = NoisyImageDataset([bad, good], crop_size=16, train=True)
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        noisy, clean, _ = dataset[0]
    assert clean.shape == (3, 16, 16)
    assert dataset.bad_files == {bad}


def test_invalid_sigma_and_empty_list_are_rejected(image_folder):
    with pytest.raises(ValueError, match="sigma"):
        NoisyImageDataset([image_folder / "x.png"], sigma=-0.1)
    with pytest.raises(ValueError, match="no images"):
        NoisyImageDataset([])


def make_pairs(root, noisy_names, clean_names):
    for folder, names in (("images", noisy_names), ("labels", clean_names)):
        (root / folder).mkdir(parents=True)
        for i, name in enumerate(names):
            Image.new("RGB", (8, 8), (i * 40, 0, 0) if folder == "images" else (i * 40, 9, 9)).save(
                root / folder / name
            )


def test_pairs_are_matched_by_name_not_listing_order(tmp_path):
    make_pairs(tmp_path, ["b.png", "a.png"], ["a.png", "b.png"])
    dataset = PairedImageDataset(tmp_path)
    assert dataset.names == ["a", "b"]
    noisy, clean, _ = dataset[0]
    # "a" was written second among the noisy files (red 40) and first among the clean (red 0)
    assert noisy[0, 0, 0].item() == pytest.approx(40 / 255)
    assert clean[0, 0, 0].item() == pytest.approx(0)


def test_unmatched_pairs_are_listed(tmp_path):
    make_pairs(tmp_path, ["a.png", "only_noisy.png"], ["a.png", "only_clean.png"])
    with pytest.raises(ValueError, match="only_clean, only_noisy"):
        PairedImageDataset(tmp_path)


def test_hidden_files_and_folders_are_not_training_images(image_folder):
    photos = list_images(image_folder)
    (image_folder / "cat" / "._a.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata")
    (image_folder / ".cache").mkdir()
    Image.new("RGB", (16, 16)).save(image_folder / ".cache" / "b.png")
    assert list_images(image_folder) == photos


def test_sigma_power_draws_low_noise_levels_more_often(image_folder):
    paths = list_images(image_folder)
    uniform = NoisyImageDataset(paths, (0.0, 0.5), 16, train=True)
    low = NoisyImageDataset(paths, (0.0, 0.5), 16, train=True, sigma_power=2.0, cache=True)
    torch.manual_seed(0)
    draws = 400
    below = [sum(d[i][2].item() < 0.1 for i in range(draws)) / draws for d in (uniform, low)]
    assert below[0] < 0.3 < 0.35 < below[1]  # expected 0.2 and 0.45
    assert len(low.cache) == len(paths)
