import pytest
import torch

from model.fine_tune import add_light_blocks, add_light_network, add_light_refine, add_refine_blocks
from model.unet import UNet, light_gate


def test_default_unet_is_the_original_architecture():
    model = UNet()
    assert sum(p.numel() for p in model.parameters()) == 31_037_763
    top_level = {key.split(".")[0] for key in model.state_dict()}
    expected = {"in_conv", "out_conv"} | {f"enc_{i}" for i in range(1, 5)} | {f"dec_{i}" for i in range(1, 5)}
    assert top_level == expected
    assert "dec_1.conv_trans.weight" in model.state_dict()
    assert "dec_4.conv_block.conv.0.weight" in model.state_dict()


@pytest.mark.parametrize("height, width", [(1, 1), (17, 31), (64, 64), (50, 97)])
def test_output_has_the_input_size(height, width):
    model = UNet(base_channels=4, depth=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, height, width))
    assert out.shape == (2, 3, height, width)


def test_noise_level_input_requires_sigma_and_uses_it():
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=2, noise_level_input=True).eval()
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="noise level"):
        model(x)
    with torch.no_grad():
        low, high = model(x, 0.05), model(x, torch.tensor([0.4, 0.4]))
    assert not torch.allclose(low, high)


def test_residual_subtracts_the_predicted_noise():
    model = UNet(base_channels=4, depth=2, residual=True).eval()
    torch.nn.init.zeros_(model.out_conv.weight)
    torch.nn.init.zeros_(model.out_conv.bias)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), x)


def test_invalid_options_are_rejected():
    with pytest.raises(ValueError, match="residual"):
        UNet(in_channels=1, out_channels=3, residual=True)
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)
    with pytest.raises(ValueError, match="batch"):
        UNet(base_channels=4, depth=2)(torch.rand(3, 16, 16))


def test_without_batch_norm_every_conv_has_a_bias_and_train_equals_eval():
    model = UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.train()(x, 0.1), model.eval()(x, 0.1))
    assert UNet(**model.config).config == model.config


def test_refine_blocks_grow_onto_a_trained_network_without_changing_what_it_computes():
    torch.manual_seed(0)
    trained = UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False)
    grown = add_refine_blocks(trained, 2)
    assert (grown.config["refine_blocks"], trained.config["refine_blocks"]) == (2, 0)
    new = set(grown.state_dict()) - set(trained.state_dict())
    assert new and all(key.startswith("refine.") for key in new)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(grown(x, 0.1), trained(x, 0.1))
        grown.refine[1].body[-1].weight.add_(0.01)  # once its last convolution moves, a block counts
        assert not torch.equal(grown(x, 0.1), trained(x, 0.1))
    assert add_refine_blocks(grown, 1).config["refine_blocks"] == 3
    assert "refine" not in dict(UNet().named_children())  # the original network has none
    with pytest.raises(ValueError, match="refine_blocks"):
        UNet(refine_blocks=-1)


def test_light_refine_blocks_change_light_noise_only_and_start_as_the_trained_network():
    torch.manual_seed(0)
    blind = UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False)
    trained = add_refine_blocks(blind, 1)
    with torch.no_grad():
        trained.refine[0].body[-1].weight.normal_(0, 0.01)  # a trained block, not the identity
    light = add_light_refine(trained, light_sigma=0.1)
    new = set(light.state_dict()) - set(trained.state_dict())
    assert new and all(key.startswith("light_refine.") for key in new)
    x, sigma = torch.rand(4, 3, 16, 16), torch.tensor([0.05, 0.15, 0.2, 0.5])
    with torch.no_grad():
        assert torch.equal(light(x, sigma), trained(x, sigma))  # the copies compute what the blocks did
        light.light_refine[0].body[-1].weight.add_(0.01)
        change = (light(x, sigma) - trained(x, sigma)).abs().amax(dim=(1, 2, 3))
    assert change[0] > 0 and change[1] > 0  # light noise, and the blend up to twice light_sigma
    assert change[2] == 0 and change[3] == 0  # heavier noise: exactly the trained network's output
    assert light_gate(torch.tensor([0.0, 0.1, 0.15, 0.2, 0.5]), 0.1).tolist() == pytest.approx([1, 1, 0.5, 0, 0])
    with pytest.raises(ValueError, match="already"):
        add_light_refine(light, 0.1)
    with pytest.raises(ValueError, match="light_refine needs"):
        UNet(light_refine=True)  # the original network takes no sigma to gate by


def test_light_blocks_grow_the_light_copy_deeper_without_changing_what_it_computes():
    torch.manual_seed(0)
    blind = UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False)
    light = add_light_refine(add_refine_blocks(blind, 1), light_sigma=0.1)
    with torch.no_grad():
        light.light_refine[0].body[-1].weight.normal_(0, 0.01)  # a trained copy
    deeper = add_light_blocks(light, 2)
    assert (len(deeper.light_refine), len(deeper.refine), deeper.config["light_blocks"]) == (3, 1, 3)
    new = set(deeper.state_dict()) - set(light.state_dict())
    assert new and all(key.startswith(("light_refine.1.", "light_refine.2.")) for key in new)
    x, sigma = torch.rand(3, 3, 16, 16), torch.tensor([0.05, 0.15, 0.3])
    with torch.no_grad():
        assert torch.equal(deeper(x, sigma), light(x, sigma))
        deeper.light_refine[2].body[-1].weight.add_(0.01)
        change = (deeper(x, sigma) - light(x, sigma)).abs().amax(dim=(1, 2, 3))
    assert change[0] > 0 and change[1] > 0 and change[2] == 0  # the gate still guards heavy noise
    assert len(UNet(**deeper.config).light_refine) == 3  # the config rebuilds it
    assert len(UNet(**light.config).light_refine) == 1  # light_blocks 0: as many as refine_blocks
    with pytest.raises(ValueError, match="no light-noise"):
        add_light_blocks(add_refine_blocks(blind, 1), 1)
    with pytest.raises(ValueError, match="light_blocks needs light_refine"):
        UNet(light_blocks=2)


def test_light_network_gives_light_noise_a_copy_of_the_whole_network_and_runs_one_where_it_can():
    torch.manual_seed(0)
    trained = add_light_refine(
        add_refine_blocks(UNet(base_channels=4, depth=2, noise_level_input=True, residual=True, batch_norm=False), 1),
        light_sigma=0.1,
    )
    light = add_light_network(trained)
    new = set(light.state_dict()) - set(trained.state_dict())
    assert new == {f"light_network.{key}" for key in trained.state_dict()}
    x, sigma = torch.rand(4, 3, 16, 16), torch.tensor([0.05, 0.15, 0.2, 0.5])
    with torch.no_grad():
        assert torch.equal(light(x, sigma), trained(x, sigma))  # the copy computes what the network did
        light.light_network.in_conv.conv[0].weight.add_(0.01)  # the trunk's first layer, in the copy
        change = (light(x, sigma) - trained(x, sigma)).abs().amax(dim=(1, 2, 3))
    assert change[0] > 0 and change[1] > 0  # light noise, and the blend up to twice light_sigma
    assert change[2] == 0 and change[3] == 0  # heavier noise: exactly the trained network's output
    batches = {"own": [], "copy": []}  # the batch size each network's first layer sees
    light.in_conv.register_forward_hook(lambda _, inputs, __: batches["own"].append(len(inputs[0])))
    light.light_network.in_conv.register_forward_hook(lambda _, inputs, __: batches["copy"].append(len(inputs[0])))
    with torch.no_grad():
        light(x, 0.05), light(x, 0.5)  # each wholly on one side of the blend: one network each
        assert batches == {"own": [4], "copy": [4]}
        mixed = torch.tensor([0.05, 0.5, 0.15, 0.5])
        together = light(x, mixed)
        assert batches == {"own": [4, 3], "copy": [4, 2]}  # the heavy network skips 0.05, the copy 0.5
        alone = torch.cat([light(x[i : i + 1], mixed[i]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-6)  # each image as if it were denoised alone
    assert UNet(**light.config).light_network.config["light_network"] is False  # the config rebuilds one copy
    with pytest.raises(ValueError, match="already"):
        add_light_network(light)
    with pytest.raises(ValueError, match="light_network needs"):
        UNet(light_network=True)  # the original network takes no sigma to gate by
