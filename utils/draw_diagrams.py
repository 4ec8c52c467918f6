"""Draw the README's two diagrams from the code, so they cannot go stale.

    python -m utils.draw_diagrams          # image/unet_architecture.png, image/denoising_flowchart.png

The architecture is read from a built network (the shipped checkpoint's, by default): its
levels, widths, parameter counts, sigma-map input and residual output.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

import constants as C
from model.checkpoint import load_model
from model.config_flags import make_parser
from model.plots import save_figure
from model.unet import UNet

ENCODER, DECODER, INPUT, LOSS = "#cfe2f3", "#d9ead3", "#fff2cc", "#f4cccc"


def box(axis, x: float, y: float, text: str, colour: str, width: float = 2.6, height: float = 0.8) -> tuple:
    """A rounded box centred on (x, y); returns its centre."""
    patch = FancyBboxPatch(
        (x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05", fc=colour, ec="#444444", lw=1
    )
    axis.add_patch(patch)
    axis.text(x, y, text, ha="center", va="center", fontsize=8.5)
    return x, y


def arrow(axis, start: tuple, end: tuple, style: str = "-|>", colour: str = "#333333", **options) -> None:
    axis.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=colour, lw=1.2, **options))


def parameters(module) -> str:
    count = sum(p.numel() for p in module.parameters())
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count / 1e3:.1f}k"


def draw_architecture(model: UNet, path: Path) -> Path:
    """Encoder levels down the left, decoder levels up the right, skips across, the bottleneck below."""
    config, depth = model.config, model.depth
    widths = [config["base_channels"] * 2**level for level in range(depth + 1)]
    figure, axis = plt.subplots(figsize=(10, 1.25 * (depth + 3)))
    top = depth + 1.5
    in_channels = config["in_channels"] + int(config["noise_level_input"])
    inputs = "noisy RGB + sigma map" if config["noise_level_input"] else "noisy RGB"
    box(axis, 0, top + 1.1, f"input: {inputs}\n({in_channels} channels)", INPUT, width=3.6)
    left, right = [], []
    for level in range(depth + 1):
        module = model.in_conv if level == 0 else getattr(model, f"enc_{level}")
        step = "2 x (3x3 conv, ReLU)" if level == 0 else "max-pool /2, 2 x (3x3 conv, ReLU)"
        left.append(box(axis, 0, top - level, f"{step}\n{widths[level]} ch, {parameters(module)}", ENCODER, 3.6, 0.75))
    for level in range(depth - 1, -1, -1):
        module = getattr(model, f"dec_{depth - level}")
        text = f"up-conv x2, concat skip, 2 x (3x3 conv, ReLU)\n{widths[level]} ch, {parameters(module)}"
        right.append(box(axis, 6.5, top - level, text, DECODER, 4.2, 0.75))
    right.reverse()  # right[level] sits beside left[level]
    arrow(axis, (0, top + 0.7), (0, top + 0.4))
    for level in range(depth):
        arrow(axis, (left[level][0], left[level][1] - 0.38), (left[level + 1][0], left[level + 1][1] + 0.38))
        arrow(axis, (1.8, left[level][1]), (4.4, right[level][1]), colour="#888888", linestyle="--")
    arrow(axis, (1.8, left[depth][1]), (6.5, right[depth - 1][1] - 0.38), connectionstyle="arc3,rad=0.25")
    for level in range(depth - 1, 0, -1):
        arrow(axis, (6.5, right[level][1] + 0.38), (6.5, right[level - 1][1] - 0.38))
    axis.text(3.1, top - 0.35, "skip connections", fontsize=8, color="#666666", ha="center")
    output = "\noutput = input - predicted noise" if config["residual"] else ""
    box(axis, 6.5, top + 1.1, f"1x1 conv to {config['out_channels']} channels{output}", LOSS, width=4.2)
    arrow(axis, (6.5, right[0][1] + 0.38), (6.5, top + 0.7))
    total = sum(p.numel() for p in model.parameters())
    norm = "batch norm after each conv" if config["batch_norm"] else "no batch norm"
    axis.set_title(f"U-Net: depth {depth}, widths {widths}, {total:,} parameters, {norm}", fontsize=10)
    axis.set_xlim(-2.3, 9)
    axis.set_ylim(top - depth - 0.7, top + 1.7)
    axis.axis("off")
    return save_figure(figure, path)


def draw_flowchart(path: Path) -> Path:
    """Training (top row) and inference (bottom row), as the code runs them."""
    figure, axis = plt.subplots(figsize=(13, 4.2))
    training = [
        ("clean photo\n(demo, AFHQ or\nthe pretraining set)", INPUT),
        ("random crop,\nflips, rotations", INPUT),
        ("+ Gaussian noise,\nsigma drawn\nper crop", INPUT),
        ("U-Net(noisy, sigma)", ENCODER),
        ("denoised crop", DECODER),
        ("loss against the\nclean crop (L1, MSE);\nAdam step", LOSS),
    ]
    inference = [
        ("your photo\n(file, array,\nPIL or tensor)", INPUT),
        ("sigma: given, or\nestimated (patch PCA),\ntimes strength", INPUT),
        ("overlapping\n512-px tiles", INPUT),
        ("U-Net(tile, sigma)\nbf16 where native", ENCODER),
        ("tiles blended\n(raised cosine)", DECODER),
        ("denoised file\n(EXIF, ICC and\nbit depth kept)", DECODER),
    ]
    for row, (y, steps, title) in enumerate(((3, training, "training"), (1, inference, "inference"))):
        axis.text(-1.6, y, title, fontsize=11, weight="bold", va="center", rotation=90)
        centres = [box(axis, 2.2 * i, y, text, colour, width=2.0, height=1.0) for i, (text, colour) in enumerate(steps)]
        for start, end in itertools.pairwise(centres):
            arrow(axis, (start[0] + 1.02, start[1]), (end[0] - 1.02, end[1]))
        if row == 0:  # the loss trains the network
            arrow(axis, (centres[-1][0], y + 0.52), (centres[3][0], y + 0.52), connectionstyle="arc3,rad=0.3")
            axis.text(centres[4][0], y + 1.15, "gradients update the weights", fontsize=8, ha="center")
    axis.annotate("", xy=(6.6, 1.52), xytext=(6.6, 2.48), arrowprops={"arrowstyle": "-|>", "ls": "--", "color": "#888"})
    axis.text(6.75, 2.0, "best weights\n(trained_unet.pth)", fontsize=8, va="center", color="#555555")
    axis.set_xlim(-1.9, 12.3)
    axis.set_ylim(0.2, 4.4)
    axis.axis("off")
    return save_figure(figure, path)


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--checkpoint", type=Path, default=C.CHECKPOINT_PATH, help="the network to draw")
    parser.add_argument("--out", type=Path, default=C.IMAGE_DIR, help="folder for the two figures")
    args = parser.parse_args(argv)
    model = load_model(args.checkpoint)[0] if args.checkpoint.is_file() else UNet()
    print(draw_architecture(model, args.out / "unet_architecture.png"))
    print(draw_flowchart(args.out / "denoising_flowchart.png"))


if __name__ == "__main__":
    main()
