"""torch.hub entry points, so the model loads without installing anything:

model = torch.hub.load("path/to/this/repo", "unet", source="local", pretrained=True)
"""

dependencies = ["torch", "numpy", "PIL", "png", "tifffile", "pillow_heif", "tqdm"]  # what model.denoise imports

from model.denoise import load_pretrained  # noqa: E402
from model.unet import UNet  # noqa: E402


def unet(pretrained: bool = False, device: str | None = None, **config) -> UNet:
    """The pretrained denoiser (model/storage/trained_unet.pth), or a new UNet(**config)."""
    if pretrained:
        if config:
            raise ValueError("pretrained=True rebuilds the stored architecture; do not pass a config")
        return load_pretrained(device)
    return UNet(**config)
