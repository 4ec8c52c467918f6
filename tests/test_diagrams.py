"""The README's diagrams are drawn from the code: a different network gives a different figure."""

from PIL import Image

from model.unet import UNet
from utils.draw_diagrams import draw_architecture, draw_flowchart


def test_the_architecture_figure_follows_the_network(tmp_path):
    small = draw_architecture(UNet(base_channels=4, depth=2), tmp_path / "small.png")
    deep = draw_architecture(UNet(base_channels=8, depth=4, noise_level_input=True), tmp_path / "deep.png")
    with Image.open(small) as a, Image.open(deep) as b:
        assert b.height > a.height  # two more levels, two more rows of boxes
    assert draw_flowchart(tmp_path / "flow.png").stat().st_size > 10_000
