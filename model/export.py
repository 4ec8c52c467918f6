"""Export a checkpoint to ONNX, with dynamic batch, height and width.

    python -m model.export --onnx                                  # the pretrained model
    python -m model.export --onnx --checkpoint runs/demo/best.pth -o demo.onnx

The ONNX model's inputs are `image` (N, 3, H, W) float32 in [0, 1] and, for models that take
the noise level, `sigma` (N,) float32 on the [0, 1] scale; its output is `denoised`. The export
is checked against PyTorch with onnxruntime on an odd-sized image before it is kept.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

import constants as C
from model.checkpoint import CheckpointError, load_model
from model.config_flags import make_parser
from model.files import atomic_write
from model.unet import UNet

TOLERANCE = 1e-4


class WithNoiseLevel(torch.nn.Module):
    """forward(image, sigma) with sigma a tensor, as ONNX needs."""

    def __init__(self, model: UNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.model(image, sigma)


def export_onnx(model: UNet, target: str | Path) -> float:
    """Write `model` as ONNX to `target` (atomically) and return the largest difference from PyTorch."""
    import onnxruntime

    model = model.float().cpu().eval()
    batch = height = width = torch.export.Dim.DYNAMIC
    image = torch.rand(2, 3, 45, 61)
    sigma = torch.tensor([0.1, 0.3])
    if model.noise_level_input:
        module, args, names = WithNoiseLevel(model).eval(), (image, sigma), ["image", "sigma"]
        shapes = {"image": {0: batch, 2: height, 3: width}, "sigma": {0: batch}}
    else:
        module, args, names = model, (image,), ["image"]
        shapes = {"x": {0: batch, 2: height, 3: width}}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            args,
            scratch,
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=names,
            output_names=["denoised"],
            external_data=False,
            verbose=False,
        )
        session = onnxruntime.InferenceSession(str(scratch), providers=["CPUExecutionProvider"])
        test_image = torch.rand(1, 3, 53, 77)
        feed = {"image": test_image.numpy()}
        if model.noise_level_input:
            feed["sigma"] = np.array([25 / 255], np.float32)
        with torch.no_grad():
            expected = module(test_image, torch.tensor([25 / 255])) if model.noise_level_input else module(test_image)
        difference = float(np.abs(session.run(None, feed)[0] - expected.numpy()).max())
        if difference > TOLERANCE:
            raise RuntimeError(f"ONNX output differs from PyTorch by {difference:.2e} (> {TOLERANCE})")
        with atomic_write(Path(target), "wb", ".onnx") as file:
            file.write(scratch.read_bytes())
    return difference


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--onnx", action="store_true", required=True, help="export to ONNX (the only format)")
    parser.add_argument("--checkpoint", type=Path, default=C.CHECKPOINT_PATH, help="the weights to export")
    parser.add_argument("-o", "--output", type=Path, default=None, help="default: the checkpoint with .onnx")
    args = parser.parse_args(argv)
    try:
        model, _ = load_model(args.checkpoint, "cpu")
    except CheckpointError as error:
        raise SystemExit(f"error: {error}") from None
    target = args.output or args.checkpoint.with_suffix(".onnx")
    difference = export_onnx(model, target)
    print(f"wrote {target} (max difference from PyTorch {difference:.1e})")


if __name__ == "__main__":
    main()
