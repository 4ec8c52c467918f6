import pytest
import torch

from model.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from model.unet import UNet

SMALL = {"base_channels": 4, "depth": 2}


def outputs_equal(a, b):
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_round_trip_rebuilds_the_model_from_its_config(tmp_path):
    model = UNet(**SMALL, noise_level_input=True)
    save_checkpoint(tmp_path / "c.pth", model=model.state_dict(), model_config=model.config, epoch=3)
    loaded, checkpoint = load_model(tmp_path / "c.pth")
    assert checkpoint["epoch"] == 3 and checkpoint["format_version"] == 1
    assert loaded.noise_level_input
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(x, 0.1), loaded(x, 0.1))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]  # no temporary file left behind


def test_bare_state_dict_with_wrapper_prefixes_loads(tmp_path):
    model = UNet(**SMALL)
    torch.save({f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}, tmp_path / "bare.pth")
    loaded, _ = load_model(tmp_path / "bare.pth", model_config=SMALL)
    assert outputs_equal(model, loaded)


def test_original_checkpoint_with_other_submodule_names_loads_by_position(tmp_path):
    model = UNet()
    renamed = {k.replace(".encoder.", ".").replace("conv.", "double_conv."): v for k, v in model.state_dict().items()}
    assert renamed.keys() != model.state_dict().keys()
    torch.save(renamed, tmp_path / "original.pth")
    loaded, _ = load_model(tmp_path / "original.pth")
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def test_wrong_architecture_is_explained(tmp_path):
    save_checkpoint(tmp_path / "wide.pth", model=UNet(base_channels=8, depth=2).state_dict())
    with pytest.raises(CheckpointError, match=r"wide.pth: wrong architecture.*shape"):
        load_model(tmp_path / "wide.pth", model_config=SMALL)
    torch.save({"something.else": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="other.pth: wrong architecture.*missing keys"):
        load_model(tmp_path / "other.pth")


def test_a_bare_state_dict_of_another_unet_says_which_was_assumed(tmp_path):
    torch.save(UNet(**SMALL).state_dict(), tmp_path / "small.pth")
    with pytest.raises(CheckpointError, match=r"small.pth: wrong .*no model_config, so the original UNet\(\) was"):
        load_model(tmp_path / "small.pth")
    save_checkpoint(tmp_path / "named.pth", model=UNet(**SMALL).state_dict(), model_config={"base_channels": 8})
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "named.pth")
    assert "model_config" not in str(error.value)  # the file's own config was used: no hint to give


@pytest.mark.parametrize("content", [b"", b"random bytes, not a checkpoint", b"PK\x03\x04broken zip"])
def test_a_random_file_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="photo.jpg: not a PyTorch checkpoint"):
        load_checkpoint(path)


def test_missing_file_and_non_dict_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pth")
