import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from model.checkpoint import save_checkpoint
from model.export import export_onnx
from model.unet import UNet
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # `make test-fast` leaves these out


@pytest.mark.parametrize("noise_level_input, light_network", [(True, False), (False, False), (True, True)])
def test_onnx_matches_pytorch_at_any_size(tmp_path, noise_level_input, light_network):
    torch.manual_seed(0)
    blind = {"noise_level_input": noise_level_input, "residual": noise_level_input, "light_network": light_network}
    model = UNet(base_channels=4, depth=2, **blind)
    if light_network:  # a copy unlike the heavy network, or the blend would hide a wrong branch
        torch.nn.init.normal_(model.light_network.out_conv.weight)
    target = tmp_path / "model.onnx"
    assert export_onnx(model, target) <= 1e-4
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 40, 40), (3, 3, 29, 67)]:
        image = torch.rand(*shape)
        feed = {"image": image.numpy()}
        with torch.no_grad():
            if noise_level_input:
                sigma = torch.linspace(0.05, 0.3, shape[0])  # light, blended and heavy noise
                feed["sigma"] = sigma.numpy()
                expected = model.eval()(image, sigma)
            else:
                expected = model.eval()(image)
        np.testing.assert_allclose(session.run(None, feed)[0], expected.numpy(), atol=1e-4)


def test_export_cli_writes_next_to_the_checkpoint(tmp_path):
    model = UNet(base_channels=4, depth=2)
    checkpoint = save_checkpoint(tmp_path / "small.pth", model=model.state_dict(), model_config=model.config)
    result = subprocess.run(
        [sys.executable, "-m", "model.export", "--onnx", "--checkpoint", str(checkpoint)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "small.onnx").stat().st_size > 0


def test_torch_hub_loads_the_repo_locally():
    fresh = torch.hub.load(str(ROOT), "unet", source="local", base_channels=4, depth=2)
    assert isinstance(fresh, UNet) and fresh.config["base_channels"] == 4
