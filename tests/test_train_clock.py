"""The trainer's device path, run on the CPU: crops drawn where the photos are held, the
wall-clock schedule, warm start, sittings, weights loadable with weights_only=True, shipping them."""

import json
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from PIL import Image

import constants as C
from model.checkpoint import load_checkpoint, load_model, save_checkpoint
from model.dataset import list_images
from model.fine_tune import add_light_network
from model.interpolate import largest_within, level_scores
from model.interpolate import main as interpolate_main
from model.metrics import psnr
from model.photo_crops import CropSampler, read_photos, tile_origins
from model.ship_weights import main as ship_main
from model.ship_weights import relative_settings, ship, toward
from model.tasks import Denoise
from model.train import TrainConfig, load_photos, main, photo_manifest, train
from model.train_gpu import translate
from model.trainer import Trainer, learning_rate, validation_set
from model.unet import UNet
from tests.conftest import make_folder

SMALL_UNET = {"base_channels": 4, "depth": 2, "noise_level_input": True, "residual": True, "batch_norm": False}


@pytest.fixture
def pack(tmp_path):
    root = tmp_path / "pack"
    make_folder(root / "train", {"a": 4}, seed=1, size=(70, 90))
    make_folder(root / "val", {"b": 2}, seed=2, size=(48, 48))
    (root / "pack.json").write_text("{}")  # what makes a folder a pack (utils/make_pack.py writes it)
    return root


@pytest.fixture
def init(tmp_path):
    torch.manual_seed(0)
    model = UNet(**SMALL_UNET)
    path = tmp_path / "init.pth"
    save_checkpoint(path, model=model.state_dict(), model_config=model.config, training_minutes=10.0, history=[])
    return path


def run(pack, init, out, **settings):
    clock = {
        "minutes": 0.02,
        "val_seconds": 1.0,
        "sigma": 0.0,
        "sigma_max": 0.5,
        "sigma_power": 2.0,
        "ema_decay": 0.999,
    }
    fixed = {"data_dir": str(pack), "out_dir": str(out), "image_dir": str(out), "init": str(init), "device": "cpu"}
    return train(TrainConfig(**fixed, crop_size=32, batch_size=4, eval_crop_size=48, **{**clock, **settings}))


def photos_of(folder):
    return read_photos(list_images(folder))[0]


def test_deep_gray_photos_are_scaled_to_eight_bits_not_clipped(tmp_path):
    ramp = np.linspace(0, 1, 40 * 50).reshape(40, 50)
    Image.fromarray((ramp * 65535).round().astype(np.uint16)).save(tmp_path / "gray16.png")
    Image.fromarray(ramp.astype(np.float32)).save(tmp_path / "gray32.tif")
    photos, _ = read_photos([tmp_path / "gray16.png", tmp_path / "gray32.tif"])
    expected = torch.from_numpy((ramp * 255).round().astype(np.uint8)).expand(3, -1, -1)
    for photo in photos:
        assert photo.dtype == torch.uint8 and (photo.int() - expected.int()).abs().max() <= 1


def test_eight_bit_photos_of_every_mode_train_as_their_rgb_pixels(tmp_path):
    colour = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    files = []
    for mode, suffix in (("L", "png"), ("LA", "png"), ("RGBA", "png"), ("P", "png"), ("CMYK", "tif")):
        files.append(tmp_path / f"{mode}.{suffix}")
        colour.convert(mode).save(files[-1])
    photos, read = read_photos(files)
    assert read == files
    for photo, path in zip(photos, files, strict=True):
        with Image.open(path) as image:
            expected = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)
        assert torch.equal(photo, expected), path.name


def test_tiles_cover_every_crop_position():
    for length in (32, 33, 64, 100, 129):
        starts = tile_origins(length, side=64, stride=32)
        covered = {p for s in starts for p in range(s, min(length, s + 64) - 32 + 1)}
        assert covered == set(range(length - 32 + 1))


def test_crops_are_windows_of_the_photos_in_some_orientation():
    photo = torch.arange(3 * 40 * 50, dtype=torch.int64).reshape(3, 40, 50) % 251
    sampler = CropSampler([photo.to(torch.uint8)], 16, torch.device("cpu"), torch.Generator().manual_seed(0), "pixel")
    windows = photo.unfold(1, 16, 1).unfold(2, 16, 1).permute(1, 2, 0, 3, 4).reshape(-1, 3, 16, 16).float() / 255
    for crop in sampler.sample(12):
        orientations = [crop, crop.transpose(-1, -2)]
        orientations = [o.flip(dims) for o in orientations for dims in ((), (-1,), (-2,), (-1, -2))]
        assert any((windows == o).flatten(1).all(1).any() for o in orientations)


def test_learning_rate_warms_up_then_follows_a_cosine_to_the_end_of_the_budget():
    config = TrainConfig(lr=1e-3, final_lr_fraction=0.001, warmup_fraction=0.1)
    assert learning_rate(0.0, config) == 0.0
    assert learning_rate(0.05, config) == pytest.approx(5e-4)
    assert learning_rate(0.1, config) == pytest.approx(1e-3)
    assert learning_rate(0.55, config) == pytest.approx((1e-3 + 1e-6) / 2)
    assert learning_rate(1.0, config) == pytest.approx(1e-6)
    assert learning_rate(0.0, TrainConfig(lr=1e-3)) == 1e-3  # no warm-up: the epochs' default


def test_a_zero_minute_run_keeps_the_warm_start_weights(pack, init, tmp_path):
    result = run(pack, init, tmp_path / "out", minutes=1e-9)
    assert result["steps"] == 0 and result["best_validation"]["weights"] == "init"
    saved = torch.load(tmp_path / "out" / "best.pth", weights_only=True)
    start = load_checkpoint(init)["model"]
    assert all(torch.equal(saved["model"][k], start[k]) for k in start)


def test_runs_with_different_seeds_validate_on_the_same_noisy_photos(pack, init, tmp_path):
    starts = [run(pack, init, tmp_path / f"seed{seed}", minutes=1e-9, seed=seed)["history"][0] for seed in (0, 1)]
    assert starts[0]["val_psnr"] == starts[1]["val_psnr"]


def test_trains_for_seconds_on_the_cpu_and_saves_loadable_weights(pack, init, tmp_path):
    out = tmp_path / "out"
    result = run(pack, init, out, minutes=0.05, lr=1e-3)
    assert result["steps"] > 5 and result["crops"] == 4 * result["steps"]
    assert result["pixels"] == result["crops"] * 32 * 32 and result["crops_per_s"] > 0
    history = json.loads((out / "history.json").read_text())
    assert len(history["history"]) >= 3 and history["history"][0]["step"] == 0
    assert all(np.isfinite(h["val_psnr"]) and np.isfinite(h["val_psnr_ema"]) for h in history["history"])
    for record in history["history"]:  # a blind denoiser: PSNR per validation level, whose mean is the PSNR
        for key in ("val_psnr", "val_psnr_ema"):
            levels = record[f"{key}_by_sigma"]
            assert list(levels) == ["5/255", "15/255", "25/255", "50/255"]
            assert levels["5/255"] > levels["50/255"] and np.mean(list(levels.values())) == pytest.approx(record[key])
    model, checkpoint = load_model(out / "best.pth")  # weights_only loading, the architecture from the file
    assert model.config == UNet(**SMALL_UNET).config
    best_score = max(max(h["val_psnr"], h["val_psnr_ema"]) for h in history["history"])
    assert checkpoint["best"]["psnr"] == pytest.approx(best_score) == history["best"]["psnr"]
    assert (out / "split.json").exists() and [p.name for p in out.glob("val_prediction_*")] == [
        f"val_prediction_step_{result['steps']}.png"
    ]


def test_ship_records_the_chain_of_runs(pack, init, tmp_path):
    run(pack, init, tmp_path / "run1", val_seconds=0.5)
    run(pack, tmp_path / "run1" / "best.pth", tmp_path / "run2", val_seconds=0.5)
    state = ship([tmp_path / "run1", tmp_path / "run2"], base=init, target=tmp_path / "shipped.pth")
    shipped = torch.load(tmp_path / "shipped.pth", weights_only=True)
    seconds = [json.loads((tmp_path / r / "history.json").read_text())["train_seconds"] for r in ("run1", "run2")]
    assert shipped["training_minutes"] == pytest.approx(10.0 + sum(seconds) / 60, abs=0.05)
    assert [r["steps"] for r in shipped["gpu_runs"]] == [r["steps"] for r in state["gpu_runs"]]
    best = load_checkpoint(tmp_path / "run2" / "best.pth")["model"]
    assert all(torch.equal(shipped["model"][k], best[k].half()) for k in best)
    load_model(tmp_path / "shipped.pth")


def test_ship_averages_sibling_runs_and_refuses_runs_from_other_weights(pack, init, tmp_path):
    for seed in (1, 2):
        run(pack, init, tmp_path / f"sibling{seed}", seed=seed, lr=1e-3)
    siblings = [tmp_path / "sibling1", tmp_path / "sibling2"]
    state = ship(siblings, base=init, target=tmp_path / "shipped.pth", average=True)
    finals = [load_checkpoint(d / "last.pth")["model"] for d in siblings]
    shipped = load_checkpoint(tmp_path / "shipped.pth")
    for key, value in finals[0].items():
        if value.is_floating_point():
            assert torch.equal(shipped["model"][key], ((value + finals[1][key]) / 2).half())
    assert not torch.equal(finals[0]["out_conv.weight"], finals[1]["out_conv.weight"])  # the seeds parted them
    seconds = sum(r["train_seconds"] for r in state["gpu_runs"])
    assert shipped["training_minutes"] == pytest.approx(10.0 + seconds / 60, abs=0.05)
    assert all("mean of 2" in r["shipped"] for r in shipped["gpu_runs"])
    run(pack, tmp_path / "sibling1" / "last.pth", tmp_path / "cousin", seed=3)
    with pytest.raises(SystemExit, match="cousin: started from other weights"):
        ship_main(
            [
                "--average",
                str(siblings[0]),
                str(tmp_path / "cousin"),
                "--base",
                str(init),
                "--target",
                str(tmp_path / "x.pth"),
            ]
        )
    assert not (tmp_path / "x.pth").exists()


def test_ship_final_takes_the_runs_last_weights_not_its_best(pack, init, tmp_path):
    run(pack, init, tmp_path / "run", lr=1e-3, ema_decay=0.0)
    (tmp_path / "run" / "best.pth").unlink()  # as if no validation had beaten the start: --final needs none
    final = load_checkpoint(tmp_path / "run" / "last.pth")["model"]
    ship([tmp_path / "run"], base=init, target=tmp_path / "shipped.pth", final=True)
    shipped = load_checkpoint(tmp_path / "shipped.pth")
    assert all(torch.equal(shipped["model"][k], final[k].half()) for k in final)
    assert shipped["gpu_runs"][-1]["shipped"] == "its final weights"
    ship([tmp_path / "run"], base=init, target=tmp_path / "half.pth", final=True, fraction=0.5)
    assert load_checkpoint(tmp_path / "half.pth")["gpu_runs"][-1]["shipped"] == (
        "0.5 of the way from the start to its final weights"
    )
    with pytest.raises(SystemExit, match="--average already ships the runs' final weights"):
        ship_main([str(tmp_path / "run"), "--average", "--final", "--target", str(tmp_path / "x.pth")])
    assert not (tmp_path / "x.pth").exists()


def test_ship_a_fraction_of_the_way_from_the_start_to_the_runs_weights(pack, init, tmp_path):
    run(pack, init, tmp_path / "run", lr=1e-3)
    ship([tmp_path / "run"], base=init, target=tmp_path / "shipped.pth", fraction=0.25)
    start, best = load_checkpoint(init)["model"], load_checkpoint(tmp_path / "run" / "best.pth")["model"]
    shipped = load_checkpoint(tmp_path / "shipped.pth")
    weight = "out_conv.weight"
    assert not torch.equal(start[weight], best[weight])  # the run moved it
    assert torch.equal(shipped["model"][weight], (start[weight] + 0.25 * (best[weight] - start[weight])).half())
    assert "0.25 of the way from the start" in shipped["gpu_runs"][-1]["shipped"]
    for fraction in ("0", "1.5"):
        with pytest.raises(SystemExit, match=f"fraction {fraction}: must be in"):
            ship_main(
                [
                    str(tmp_path / "run"),
                    "--base",
                    str(init),
                    "--target",
                    str(tmp_path / "x.pth"),
                    "--fraction",
                    fraction,
                ]
            )
    assert not (tmp_path / "x.pth").exists()


def test_weights_between_two_networks_of_one_kind_only():
    start, end = UNet(**SMALL_UNET).state_dict(), UNet(**SMALL_UNET).state_dict()
    middle = toward(start, end, 0.5)
    assert torch.allclose(middle["out_conv.weight"], (start["out_conv.weight"] + end["out_conv.weight"]) / 2)
    assert torch.equal(toward(start, end, 0.0)["out_conv.weight"], start["out_conv.weight"])
    with pytest.raises(ValueError, match="different layers"):
        toward(start, UNet(**{**SMALL_UNET, "depth": 3}).state_dict(), 0.5)
    before = UNet(**SMALL_UNET).state_dict()  # a run that grew a light-noise copy of its start, and moved it
    end = add_light_network(UNet(**SMALL_UNET)).state_dict() | {"out_conv.weight": before["out_conv.weight"]}
    end["light_network.out_conv.weight"] = before["out_conv.weight"] + 1
    middle = toward(before, end, 0.25)
    assert torch.allclose(middle["light_network.out_conv.weight"], before["out_conv.weight"] + 0.25)
    assert torch.equal(middle["out_conv.weight"], before["out_conv.weight"])


def test_the_fraction_chosen_is_the_largest_with_no_level_down_by_more_than_the_tolerance():
    rows = {
        0.0: {"5/255": 40.0, "0.5": 25.0},
        0.5: {"5/255": 40.1, "0.5": 24.99},
        1.0: {"5/255": 40.2, "0.5": 24.95},
    }
    assert largest_within(rows, 0.0) == 0.0  # both points lose at 0.5
    assert largest_within(rows, 0.02) == 0.5
    assert largest_within(rows, 0.05) == 1.0
    assert largest_within(rows, 0.001) == 0.0  # none: the start


def test_interpolate_scores_points_between_start_and_run_on_its_validation_photos(pack, init, tmp_path, capsys):
    run(pack, init, tmp_path / "run", lr=1e-3)
    argv = [str(tmp_path / "run"), "--base", str(init), "--fractions", "0.5", "1", "--levels", "5/255", "0.5"]
    interpolate_main(argv)
    result = json.loads((tmp_path / "run" / "interpolation.json").read_text())
    assert list(result["psnr"]) == ["0.0", "0.5", "1.0"]
    config = TrainConfig(data_dir=str(pack), eval_crop_size=48)
    _, photos, _ = load_photos(photo_manifest(config), config)
    items = validation_set(photos, config, torch.device("cpu"), [Denoise((s, s)) for s in (5 / 255, 0.5)])
    for fraction, weights in (("0.0", init), ("1.0", tmp_path / "run" / "best.pth")):
        expected = level_scores(load_model(weights)[0], items)
        assert result["psnr"][fraction]["5/255"] == pytest.approx(expected[min(expected)], abs=1e-4)
        assert result["psnr"][fraction]["0.5"] == pytest.approx(expected[max(expected)], abs=1e-4)
    assert result["chosen"] == largest_within({float(f): row for f, row in result["psnr"].items()}, 0.0)
    printed = capsys.readouterr().out
    assert "| fraction | 5/255 | 0.5 |" in printed
    shipping = f"--base {init} --fraction {result['chosen']:g}" if result["chosen"] else "nothing to ship"
    assert shipping in printed


def test_shipped_settings_name_no_folder_of_the_machine_they_ran_on():
    run = {"steps": 3, "config": {"init": str(C.CHECKPOINT_PATH), "pack": "/elsewhere/pack", "lr": 1e-4}}
    assert relative_settings(run) == {
        "steps": 3,
        "config": {"init": "model/storage/trained_unet.pth", "pack": "/elsewhere/pack", "lr": 1e-4},
    }
    assert relative_settings({"steps": 3}) == {"steps": 3}  # an entry without settings stays as it is


def test_shipping_a_run_that_is_not_there_is_a_one_line_error(init, tmp_path):
    target = tmp_path / "shipped.pth"
    with pytest.raises(SystemExit, match="no_run/history.json: no such file; is .* a run folder"):
        ship_main([str(tmp_path / "no_run"), "--base", str(init), "--target", str(target)])
    assert not target.exists()


def test_photos_smaller_than_a_crop_are_padded_and_broken_ones_skipped_by_name(pack, init, tmp_path):
    Image.new("RGB", (20, 20)).save(pack / "train" / "tiny.png")
    (pack / "train" / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="skipping .*broken.png"):
        result = run(pack, init, tmp_path / "out", minutes=1e-9)
    assert result["train_photos"] == 5
    sampler = CropSampler([torch.full((3, 20, 20), 7, dtype=torch.uint8)], 32, torch.device("cpu"), torch.Generator())
    assert sampler.sample(2).shape == (2, 3, 32, 32)


def test_a_schedule_runs_as_sittings_that_resume_from_the_saved_state(pack, init, tmp_path):
    out, schedule = tmp_path / "out", {"minutes": 0.06, "val_seconds": 0.5, "lr": 1e-3}
    first = run(pack, init, out, **schedule, stop_minutes=0.03)  # the first half of the schedule
    assert 0.03 * 60 <= first["train_seconds"] < 0.06 * 60
    assert torch.load(out / "last.pth", weights_only=True)["step"] == first["steps"]
    model, _ = load_model(out / "last.pth")  # the training state also denoises, as best.pth does
    assert model.config == UNet(**SMALL_UNET).config
    again = run(pack, init, out, **schedule, stop_minutes=0.03, resume=True)  # nothing left before the stop
    assert again["steps"] == first["steps"] and again["history"] == first["history"]
    rest = run(pack, init, out, **schedule, resume=True)
    assert rest["steps"] > first["steps"] and rest["train_seconds"] >= 0.06 * 60
    assert [h["step"] for h in rest["history"]] == sorted(h["step"] for h in rest["history"])


def test_resume_without_a_saved_state_starts_the_run(pack, init, tmp_path, capsys):
    out = tmp_path / "new"
    flags = [
        "--data-dir",
        str(pack),
        "--init",
        str(init),
        "--out-dir",
        str(out),
        "--device",
        "cpu",
        "--crop-size",
        "32",
    ]
    main([*flags, "--minutes", "1e-9", "--eval-crop-size", "48", "--resume"])  # nothing to resume: a start
    assert "resuming" not in capsys.readouterr().out
    assert torch.load(out / "last.pth", weights_only=True)["step"] == 0


def test_a_noise_level_on_the_0_255_scale_is_refused_before_any_work(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(SystemExit, match=r"sigma must be within \[0, 1\] on the \[0, 1\] pixel scale"):
        main(["--data-dir", str(tmp_path / "no_pack"), "--out-dir", str(out), "--device", "cpu", "--sigma-max", "25"])
    assert not out.exists()


def test_validation_scores_in_fp32_even_where_training_runs_in_bf16(pack, init):
    device = torch.device("cpu")
    model, _ = load_model(init, device)
    photos = photos_of(pack / "val")
    config = TrainConfig(sigma=0.0, sigma_max=0.5, amp="bf16", crop_size=32, eval_crop_size=48)
    with pytest.warns(UserWarning) if not torch.ops.mkldnn._is_mkldnn_bf16_supported() else nullcontext():
        trainer = Trainer(model, config, device, photos)  # trains in bf16, as on a GPU or a CPU with native bf16
    items = validation_set(photos, config, device)

    def mean_psnr(bf16: bool) -> float:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            scores = [psnr(model(noisy, sigma).float().clamp(0, 1), clean) for noisy, clean, sigma in items]
        return torch.cat(scores).mean().item()

    fp32, bf16 = mean_psnr(False), mean_psnr(True)
    assert abs(fp32 - bf16) > 1e-4  # the two precisions do score differently
    assert trainer.validate(items)["val_psnr"] == pytest.approx(fp32, abs=1e-5)


@pytest.mark.parametrize("loss", ["l1", "mse", "psnr"])
def test_the_training_loss_is_the_one_asked_for(pack, init, loss):
    device = torch.device("cpu")
    model, _ = load_model(init, device)
    # amp none: fp32 even on a CPU that multiplies bf16 natively, to compare with the loss computed here
    config = TrainConfig(loss=loss, sigma=0.0, sigma_max=0.2, amp="none", crop_size=32, seed=0)
    photos = photos_of(pack / "train")
    got = Trainer(model, config, device, photos).forward_loss(4).item()

    sampler = CropSampler(photos, 32, device, torch.Generator().manual_seed(0))  # the same crops and noise
    clean = sampler.sample(4)
    noisy, sigma = config.make_task().degrade_batch(clean, sampler.generator)
    with torch.no_grad():
        denoised = model(noisy, sigma)
    error = denoised - clean
    expected = {"l1": error.abs().mean(), "mse": error.square().mean(), "psnr": -psnr(denoised, clean).mean()}
    assert got == pytest.approx(expected[loss].item(), rel=1e-5)


def test_a_set_with_a_split_trains_on_its_lossless_photos_wherever_it_lies(tmp_path, init):
    root = make_folder(tmp_path / "set" / "photos", {"p": 4}, seed=3, size=(70, 90)).parent
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    split = {"root": "/built/elsewhere", "train": files[:3], "val": files[3:], "test": []}
    (root / "split.json").write_text(json.dumps(split))
    config = TrainConfig(data_dir=str(root))
    train_photos, val_photos, _ = load_photos(photo_manifest(config), config)
    assert [t.shape for t in train_photos] == [(3, 70, 90)] * 3 and len(val_photos) == 1
    expected = torch.from_numpy(np.array(Image.open(root / files[0]))).permute(2, 0, 1)
    assert torch.equal(train_photos[0], expected)
    result = run(root, init, tmp_path / "out")
    assert result["train_photos"] == 3 and result["steps"] > 0


def test_other_validation_photos_replace_the_packs(tmp_path, pack):
    train_only = tmp_path / "train_only"
    make_folder(train_only / "train", {"a": 2}, seed=1, size=(70, 90))
    (train_only / "pack.json").write_text("{}")
    config = TrainConfig(data_dir=str(train_only), val_dir=str(pack / "val"))
    train_photos, val_photos, names = load_photos(photo_manifest(config), config)
    assert len(train_photos) == 2 and len(val_photos) == 2 and val_photos[0].shape == (3, 48, 48)


def test_a_run_from_scratch_builds_the_network_its_flags_name(pack, tmp_path):
    drunet_like = {"block": "residual", "downsample": "strided-conv", "bias": False}
    run(pack, "", tmp_path / "out", minutes=0.01, **SMALL_UNET, **drunet_like)
    model, _ = load_model(tmp_path / "out" / "best.pth")
    assert model.config["block"] == "residual" and not model.config["bias"]


def test_a_run_of_epochs_ships_through_the_same_command(tmp_path, init):
    photos = make_folder(tmp_path / "photos", {"cat": 8, "dog": 8}, seed=4)
    out = tmp_path / "epochs"
    train(
        data_dir=str(photos),
        out_dir=str(out),
        image_dir=str(tmp_path / "img"),
        epochs=1,
        batch_size=4,
        crop_size=32,
        eval_crop_size=32,
        **SMALL_UNET,
    )
    state = ship([out], base=init, target=tmp_path / "shipped.pth")
    (entry,) = state["gpu_runs"]
    assert entry["device"] == "cpu" and entry["steps"] > 0 and entry["config"]["epochs"] == 1
    assert state["training_minutes"] == pytest.approx(10.0 + entry["train_seconds"] / 60, abs=0.05)
    load_model(tmp_path / "shipped.pth")


def test_evaluate_scores_a_pack_run_on_the_training_sets_test_photos(pack, init, tmp_path, monkeypatch):
    from model import evaluate

    root = make_folder(tmp_path / "pretrain" / "photos", {"t": 3}, seed=5, size=(48, 48)).parent
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    split = {"root": str(root), "train": files[:1], "val": files[1:2], "test": files[2:]}
    (root / "split.json").write_text(json.dumps(split))
    monkeypatch.setattr(C, "PRETRAIN_DIR", root)
    out = tmp_path / "gpu"
    run(pack, init, out, minutes=0.01, sigma_max=0.2)
    rows = evaluate.evaluate_run(out, "cpu", tmp_path / "img")
    assert [r["image"] for r in rows] == [files[2]] and 0 <= rows[0]["sigma"] <= 0.2
    assert json.loads((out / "test_metrics.json").read_text())["mean"]["psnr_denoised"] == rows[0]["psnr_denoised"]


def test_the_old_gpu_trainer_command_becomes_the_gpu_preset():
    old = ["--pack", "data/pack", "--out=runs/gpu/run", "--no-bf16", "--minutes", "11", "--val-crop", "256"]
    assert translate(old) == [
        "--preset", "gpu", "--data-dir", "data/pack", "--out-dir=runs/gpu/run", "--amp", "none",
        "--minutes", "11", "--eval-crop-size", "256",
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="--scratch is gone"):
        translate(["--scratch", "drunet-like"])
