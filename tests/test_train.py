import dataclasses
import json

import pytest
import torch

import model.train as train_module
from model.checkpoint import load_model
from model.losses import charbonnier_loss
from model.precision import resolve_amp
from model.train import TrainConfig, TrainingDiverged, parse_args, train
from model.unet import UNetConfig

TINY = {"base_channels": 4, "depth": 2, "crop_size": 16, "eval_crop_size": 16, "batch_size": 4}


def tiny_config(tmp_path, image_folder, **changes) -> TrainConfig:
    return TrainConfig(
        data_dir=str(image_folder),
        out_dir=str(tmp_path / "run"),
        image_dir=str(tmp_path / "img"),
        **{**TINY, **changes},
    )


def test_training_writes_checkpoints_history_and_plot(tmp_path, image_folder):
    result = train(tiny_config(tmp_path, image_folder, epochs=2))
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {"best.pth", "last.pth", "history.json", "split.json"}
    assert (tmp_path / "img" / "loss_plot.png").stat().st_size > 0
    history = json.loads((run / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2] == [h["epoch"] for h in result["history"]]
    assert all(h["train_loss"] > 0 and h["val_psnr"] > 0 for h in history)
    model, checkpoint = load_model(run / "best.pth")
    assert checkpoint["model_config"]["base_channels"] == 4
    assert checkpoint["best_val_psnr"] == max(h["val_psnr"] for h in history)
    assert set(checkpoint) >= {"epoch", "train_config", "best"} and "optimizer" not in checkpoint  # weights, facts
    last = torch.load(run / "last.pth", weights_only=True)  # and the whole state, to resume from
    assert set(last) >= {"model", "optimizer", "generator", "step", "seconds", "train_config", "history"}


def test_resume_continues_from_the_last_epoch(tmp_path, image_folder):
    train(tiny_config(tmp_path, image_folder, epochs=1))
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(tiny_config(tmp_path, image_folder, epochs=2))
    result = train(tiny_config(tmp_path, image_folder, epochs=2, resume=True))
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert result["history"][1]["step"] == 2 * result["history"][0]["step"]


def test_same_seed_gives_the_same_weights(tmp_path, image_folder):
    first = train(tiny_config(tmp_path / "a", image_folder, epochs=1))
    second = train(tiny_config(tmp_path / "b", image_folder, epochs=1))
    a = torch.load(first["last"], weights_only=True)["model"]
    b = torch.load(second["last"], weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


class NaNOnFirstCalls(train_module.UNet):
    """Returns NaN for the first `bad_calls` training forward passes."""

    bad_calls = 0

    def forward(self, x, sigma=None):
        out = super().forward(x, sigma)
        if self.training and NaNOnFirstCalls.bad_calls > 0:
            NaNOnFirstCalls.bad_calls -= 1
            return out * float("nan")
        return out


def test_a_non_finite_loss_is_skipped_and_counted(tmp_path, image_folder, monkeypatch):
    monkeypatch.setattr(train_module, "UNet", NaNOnFirstCalls)
    NaNOnFirstCalls.bad_calls = 2
    result = train(tiny_config(tmp_path, image_folder, epochs=1))
    assert result["history"][0]["skipped_steps"] == 2


def test_persistent_non_finite_loss_stops_training_clearly(tmp_path, image_folder, monkeypatch):
    monkeypatch.setattr(train_module, "UNet", NaNOnFirstCalls)
    NaNOnFirstCalls.bad_calls = 1000
    with pytest.raises(TrainingDiverged, match="3 non-finite losses in a row"):
        train(tiny_config(tmp_path, image_folder, epochs=1, max_bad_steps=3))


def test_empty_data_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        train(tiny_config(tmp_path, tmp_path / "empty"))


def test_cli_flags_map_to_the_config():
    config = parse_args(["--epochs", "3", "--sigma", "0.1", "--noise-level-input", "--data-dir", "x"])
    assert (config.epochs, config.sigma, config.model.noise_level_input, config.data_dir) == (3, 0.1, True, "x")
    assert config.model.base_channels == 64  # the original architecture by default


def test_network_fields_are_one_nested_config_that_old_flat_configs_still_fill():
    config = TrainConfig(base_channels=8, lr=0.01)
    assert config.model == UNetConfig(base_channels=8) and config.lr == 0.01
    assert dataclasses.replace(config, depth=2).model == UNetConfig(base_channels=8, depth=2)
    stored = dataclasses.asdict(config)
    assert stored["model"]["base_channels"] == 8 and "base_channels" not in stored
    assert TrainConfig.from_dict(stored) == config
    flat = {"base_channels": 8, "lr": 0.01, "dropped_long_ago": 1}  # a checkpoint written before UNetConfig
    assert TrainConfig.from_dict(flat) == config


@pytest.mark.filterwarnings("ignore:bf16 is emulated")  # this test checks that bf16 works, not that it is fast
@pytest.mark.parametrize("loss", ["l1", "charbonnier"])
def test_losses_bf16_autocast_and_channels_last_train(tmp_path, image_folder, loss):
    config = tiny_config(tmp_path, image_folder, epochs=1, loss=loss, amp="bf16", channels_last="yes")
    history = train(config)["history"]
    assert history[0]["train_loss"] > 0 and history[0]["skipped_steps"] == 0


def test_auto_precision_uses_bf16_only_where_the_cpu_has_it(monkeypatch):
    cpu = torch.device("cpu")
    for native, expected in [(True, "bf16"), (False, "none")]:
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
        assert resolve_amp("auto", cpu) == expected
        assert resolve_amp("none", cpu) == "none"
    with pytest.warns(UserWarning, match="bf16 is emulated on this cpu"):
        assert resolve_amp("bf16", cpu) == "bf16"


def test_unknown_loss_or_precision_is_refused(tmp_path, image_folder):
    with pytest.raises(ValueError, match="loss must be one of"):
        train(tiny_config(tmp_path, image_folder, loss="ssim"))
    with pytest.raises(ValueError, match="amp one of"):
        train(tiny_config(tmp_path, image_folder, amp="int8"))
    with pytest.raises(ValueError, match="reset_head must be one of"):
        train(tiny_config(tmp_path, image_folder, reset_head="maybe"))


def test_a_sitting_stops_at_its_minutes_and_holds_on_resume(tmp_path, image_folder):
    result = train(tiny_config(tmp_path, image_folder, epochs=5, stop_minutes=1e-6))
    assert [h["step"] for h in result["history"]] == [1]  # stopped (and saved) after its first step
    again = train(tiny_config(tmp_path, image_folder, epochs=5, stop_minutes=1e-6, resume=True))
    assert again["history"] == result["history"]
    rest = train(tiny_config(tmp_path, image_folder, epochs=5, resume=True))
    assert [h["epoch"] for h in rest["history"]] == [0, 1, 2, 3, 4, 5]


def test_charbonnier_is_a_smooth_l1():
    output, target = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])
    assert charbonnier_loss(output, target).item() == pytest.approx((1e-3 + 1.0) / 2, rel=1e-3)


def test_prediction_epochs_are_named_or_numbered():
    assert train_module.prediction_epochs("first,middle,last", 10) == {1, 5, 10}
    assert train_module.prediction_epochs("2, 4", 10) == {2, 4}
    assert train_module.prediction_epochs("", 10) == set()


def test_validation_predictions_are_drawn_at_the_chosen_epochs(tmp_path, image_folder):
    train(tiny_config(tmp_path, image_folder, epochs=3))
    drawn = sorted(p.name for p in (tmp_path / "img").glob("val_prediction_epoch_*.png"))
    assert drawn == ["val_prediction_epoch_1.png", "val_prediction_epoch_2.png", "val_prediction_epoch_3.png"]
