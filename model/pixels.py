"""Pixels of a decoded photo as arrays, by Pillow and numpy alone: shared by the denoise CLI's
reader (`model/photo_io.py`) and the trainer's (`model/photo_crops.py`), which must import on a
machine without pypng, tifffile or pillow-heif."""

from __future__ import annotations

import numpy as np
from PIL import Image

STRAIGHT_ALPHA = {"La": "LA", "RGBa": "RGBA"}  # premultiplied modes, as Pillow's filters make them


def pixel_array(image: Image.Image) -> np.ndarray:
    """The pixels of a PIL image of any mode as an H x W [x C] array: 8-bit gray and colour modes
    as they are, 16-bit gray (I;16 in any byte order, I) as uint16, F as float32, premultiplied
    La / RGBa made straight; other modes (palette, 1-bit, CMYK, YCbCr, LAB) as RGB, or RGBA where
    they carry transparency."""
    image = image.convert(STRAIGHT_ALPHA[image.mode]) if image.mode in STRAIGHT_ALPHA else image
    if image.mode in ("L", "LA", "RGB", "RGBA", "F"):
        return np.asarray(image)
    if image.mode.startswith("I"):
        pixels = np.asarray(image)
        if pixels.min() < 0 or pixels.max() > 65535:  # 32-bit integers (mode I): a measurement, not a photo
            raise ValueError(
                f"integer pixels from {pixels.min()} to {pixels.max()}, outside 0-65535; scale them to 16 bits first"
            )
        return pixels.astype(np.uint16)
    return np.asarray(image.convert("RGBA" if image.has_transparency_data else "RGB"))


def rescale(array: np.ndarray, dtype: type) -> np.ndarray:
    """uint16 or float [0, 1] pixels on the full scale of `dtype` (uint8 or uint16), rounded."""
    source_top = 1.0 if array.dtype.kind == "f" else 65535.0
    top = np.iinfo(dtype).max
    return np.round(array.astype(np.float64) * (top / source_top)).clip(0, top).astype(dtype)


def three_channels(pixels: np.ndarray) -> np.ndarray:
    """H x W x 3 pixels of an H x W [x C] array: gray spread over the three channels, alpha dropped."""
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    return pixels[..., :3] if pixels.shape[-1] >= 3 else pixels[..., :1].repeat(3, axis=-1)
