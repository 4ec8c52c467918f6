"""Read and write user photos for the denoise CLI without losing what the file carries.

Pillow covers most formats, pillow-heif adds the HEIC / HEIF photos of phones; 16-bit colour
PNGs and 16-bit or float colour TIFFs (which Pillow reduces to 8 bits or cannot open) go
through pypng and tifffile. EXIF and ICC profiles are carried over to the output where its
format can hold them. An EXIF orientation is applied to the pixels when the photo is read and
the tag reset to 1 ("upright"), so the output looks right in every viewer, also those that
ignore the tag.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import png
import tifffile
from PIL import Image, ImageOps
from pillow_heif import register_heif_opener

from model.files import atomic_write
from model.pixels import pixel_array, rescale

MIN_SIDE = 8  # smaller images have no texture to denoise and no room for the noise estimate
MAX_MEGAPIXELS = 100.0  # default limit; larger photos need --max-megapixels (they are tiled anyway)
FORMATS = {"png": "PNG", "tif": "TIFF", "jpg": "JPEG", "webp": "WEBP"}
EIGHT_BIT_FORMATS = ("jpg", "jpeg", "webp")
ORIENTATION = 0x0112  # the EXIF tag
RAW_SUFFIXES = {".arw", ".cr2", ".cr3", ".dng", ".nef", ".nrw", ".orf", ".pef", ".raf", ".rw2", ".srw"}

register_heif_opener()


def readable_extensions() -> set[str]:
    """File name extensions of the formats Pillow can open (not those it can only write)."""
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def kept_metadata(info: dict) -> dict:
    """What an output carries over from a file's metadata: EXIF, ICC profile and dpi, where it has
    them (pillow-heif says None for a photo without EXIF, which writers then choke on)."""
    return {key: info[key] for key in ("exif", "icc_profile", "dpi") if info.get(key) is not None}


def fitting_metadata(info: dict, mode: str) -> dict:
    """`info` less an ICC profile that does not describe pixels of `mode`, by the colour space its
    header names: a CMYK profile must not travel with the RGB pixels made from CMYK ones (viewers
    would misread them). Bytes too short to be a profile (its header alone is 128 bytes) are kept."""
    spaces = {b"RGB ": ("RGB", "RGBA"), b"GRAY": ("L", "LA", "I;16", "F")}  # the modes denoising gives
    icc = info.get("icc_profile", b"")
    if len(icc) < 128 or mode in spaces.get(icc[16:20], ()):
        return info
    return {key: value for key, value in info.items() if key != "icc_profile"}


class PhotoError(ValueError):
    """A photo that cannot be denoised; the message names the file and the problem."""


@dataclass
class Photo:
    """Pixels (a PIL image, or an H x W x C uint16 or float array for deep colour) and metadata to keep."""

    pixels: Image.Image | np.ndarray
    info: dict = field(default_factory=dict)
    frames: int = 1  # frames in the file (animated GIF/WebP, multi-page TIFF); the first is read


def png_header(path: Path) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) of a PNG file, or None if it is not a PNG."""
    with open(path, "rb") as file:
        head = file.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, colour


def check_size(path: Path, width: int, height: int, max_megapixels: float) -> None:
    if min(width, height) < MIN_SIDE:
        raise PhotoError(f"{path}: image is {width}x{height}; at least {MIN_SIDE}x{MIN_SIDE} pixels are needed")
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise PhotoError(
            f"{path}: image is {width}x{height} ({megapixels:.0f} MP), above the limit of {max_megapixels:g} MP; "
            "pass --max-megapixels to allow it (it is denoised in tiles)"
        )


def read_photo(path: str | Path, max_megapixels: float = MAX_MEGAPIXELS) -> Photo:
    """Decode a photo fully (so a truncated file fails here), checking its size from the header first."""
    path = Path(path)
    if not path.is_file():
        raise PhotoError(f"{path}: no such file")
    if not path.stat().st_size:
        raise PhotoError(f"{path}: empty file (0 bytes)")
    try:
        header = png_header(path)
        if header:  # checked before decoding, so a bogus or huge PNG costs nothing
            check_size(path, header[0], header[1], max_megapixels)
        if header and header[2] == 16 and header[3] in (2, 6):  # 16-bit RGB / RGBA
            return deep_png(path)
        deep = deep_tiff(path, max_megapixels)
        if deep:
            return deep
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # ours applies, with a clearer message
        try:
            with Image.open(path) as image:
                check_size(path, *image.size, max_megapixels)
                image.load()
                info = kept_metadata(image.info)
                frames = getattr(image, "n_frames", 1)
                pixels = upright(image, info)
                return Photo(pixels, info, frames)
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
    except PhotoError:
        raise
    except (OSError, SyntaxError, ValueError, png.Error, tifffile.TiffFileError) as error:
        raw = path.suffix.lower() in RAW_SUFFIXES
        hint = "; a camera RAW file: develop it to TIFF or PNG first (darktable, RawTherapee)" if raw else ""
        raise PhotoError(f"{path}: cannot read image ({error}){hint}") from error


def read_pixels(path: str | Path, max_megapixels: float = MAX_MEGAPIXELS) -> np.ndarray:
    """A photo's upright pixels (see `pixel_array`; deep-colour files as uint16 or float32), for
    code that needs no metadata, such as training."""
    photo = read_photo(path, max_megapixels)
    if isinstance(photo.pixels, np.ndarray):
        return photo.pixels
    try:
        return pixel_array(photo.pixels)
    except ValueError as error:
        raise PhotoError(f"{path}: {error}") from error


def deep_png(path: Path) -> Photo:
    """A 16-bit colour PNG read by pypng (Pillow would reduce it to 8 bits), with the EXIF and ICC
    profile Pillow finds in it, turned upright."""
    width, height, rows, meta = png.Reader(filename=str(path)).asDirect()
    array = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width, meta["planes"])
    with Image.open(path) as image:
        info = kept_metadata(image.info)
        exif = image.getexif()
    orientation = exif.get(ORIENTATION, 1)
    if orientation != 1:  # the tag then says "upright", as upright() does
        exif[ORIENTATION] = 1
        info["exif"] = exif.tobytes()
    return Photo(turn(array, orientation), info)


def deep_tiff(path: Path, max_megapixels: float) -> Photo | None:
    """A TIFF of 16-bit or float colour (what raw developers and scanners write), read whole with
    its ICC profile and turned upright; None for any other file, which Pillow reads as it is."""
    with open(path, "rb") as file:
        if file.read(4) not in (b"II*\x00", b"MM\x00*"):
            return None
    try:
        tiff = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, IndexError, struct.error):
        return None  # not a TIFF that tifffile understands: Pillow says what is wrong with it
    with tiff:
        if not len(tiff.pages):
            return None
        page = tiff.pages[0]
        deep = page.bitspersample == 16 or page.sampleformat == tifffile.SAMPLEFORMAT.IEEEFP
        if not deep or page.photometric != tifffile.PHOTOMETRIC.RGB or page.samplesperpixel not in (3, 4):
            return None
        check_size(path, page.imagewidth, page.imagelength, max_megapixels)
        array = page.asarray()
        array = np.moveaxis(array, 0, -1) if page.axes.startswith("S") else array  # planar: one plane per colour
        tags = {tag.name: tag.value for tag in page.tags}
        info = {"icc_profile": tags["InterColorProfile"]} if "InterColorProfile" in tags else {}
        return Photo(turn(array, int(tags.get("Orientation", 1))), info, len(tiff.pages))


def turn(array: np.ndarray, orientation: int) -> np.ndarray:
    """An H x W x C array turned upright as the TIFF / EXIF orientation (1-8) says."""
    flipped = array[:, ::-1] if orientation in (2, 4, 5, 7) else array  # the mirrored ones
    quarter_turns = {3: 2, 4: 2, 5: 1, 6: -1, 7: -1, 8: 1}.get(orientation, 0)  # counter-clockwise
    return np.ascontiguousarray(np.rot90(flipped, quarter_turns))


def upright(image: Image.Image, info: dict) -> Image.Image:
    """The pixels turned as the EXIF orientation says; `info["exif"]` then says orientation 1."""
    exif = image.getexif()
    if exif.get(ORIENTATION, 1) == 1:
        return image.copy()
    turned = ImageOps.exif_transpose(image)
    exif[ORIENTATION] = 1
    info["exif"] = exif.tobytes()
    return turned


def write_photo(photo: Photo, path: str | Path) -> Path:
    """Write atomically in the format of the suffix, in the deepest pixels that format holds.

    16-bit and float pixels going to an 8-bit format (JPEG, WebP) are scaled to 8 bits, and
    float pixels going to PNG (which has no float) to 16 bits, each with a warning; TIFF keeps
    them as they are. A format that cannot take the image raises PhotoError naming the file."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    pixels, info = photo.pixels, dict(photo.info)
    deep = deep_pixels(pixels)
    if (suffix in EIGHT_BIT_FORMATS and deep) or (suffix == "png" and deep == "float"):
        bits, dtype = (8, np.uint8) if suffix in EIGHT_BIT_FORMATS else (16, np.uint16)
        warnings.warn(f"{path}: {deep} pixels written as {bits}-bit {suffix.upper()}", stacklevel=2)
        array = rescale(np.asarray(pixels), dtype)
        pixels = array if array.ndim == 3 and bits == 16 else Image.fromarray(array)
    if isinstance(pixels, np.ndarray):
        return write_deep_colour(pixels, info, path)
    if suffix in ("jpg", "jpeg") and pixels.mode not in ("RGB", "L"):
        pixels = pixels.convert("L" if pixels.mode == "LA" else "RGB")  # JPEG has no alpha
    options = {"quality": 95} if suffix in EIGHT_BIT_FORMATS else {}
    try:
        with atomic_write(path, "wb", path.suffix) as file:
            pixels.save(file, format=FORMATS.get(suffix, "PNG"), **info, **options)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PhotoError(f"{path}: cannot write {pixels.mode} pixels as {suffix.upper()} ({error})") from error
    return path


def write_deep_colour(pixels: np.ndarray, info: dict, path: Path) -> Path:
    """16-bit or float colour (H x W x 3 or 4): TIFF as it is, with the ICC profile; else 16-bit PNG."""
    height, width, planes = pixels.shape
    with atomic_write(path, "wb", path.suffix) as file:
        if path.suffix.lower() in (".tif", ".tiff"):
            alpha = ["unassalpha"] if planes == 4 else None
            icc = info.get("icc_profile")
            tifffile.imwrite(file, pixels, photometric="rgb", extrasamples=alpha, iccprofile=icc, compression="zlib")
        else:
            writer = png.Writer(width, height, bitdepth=16, greyscale=False, alpha=planes == 4)
            encoded = io.BytesIO()
            writer.write(encoded, pixels.reshape(height, width * planes))
            png.write_chunks(file, with_metadata(encoded.getvalue(), info))
    return path


def with_metadata(encoded: bytes, info: dict) -> list[tuple[bytes, bytes]]:
    """The chunks of a PNG with the ICC profile (iCCP) and EXIF (eXIf) of `info` put in after IHDR,
    which pypng does not write."""
    chunks = list(png.Reader(bytes=encoded).chunks())
    extra = []
    if "icc_profile" in info:
        extra.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(info["icc_profile"])))
    if "exif" in info:
        exif = info["exif"]
        extra.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))  # PNG stores it bare
    return chunks[:1] + extra + chunks[1:]


def deep_pixels(pixels: Image.Image | np.ndarray) -> str:
    """How deep the pixels are beyond 8 bits: "16-bit" (uint16 arrays, I;16 and I images), "float"
    (float arrays, F images), or "" (8 bits)."""
    if isinstance(pixels, np.ndarray):
        return "float" if pixels.dtype.kind == "f" else "16-bit"
    return "16-bit" if pixels.mode.startswith("I") else "float" if pixels.mode == "F" else ""
