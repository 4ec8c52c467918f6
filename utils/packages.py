"""Read photos out of Debian packages without installing them.

A .deb is an `ar` archive whose `data.tar.*` member holds the files; some packages keep their
photos inside containers: Qt resource archives (.rcc, GCompris) and Eet files (.edj,
Enlightenment), where the largest embedded JPEG is the photo. Packages reserved for
independent evaluation are refused by name, so no training or tuning can ever read them.
"""

from __future__ import annotations

import fnmatch
import io
import re
import struct
import subprocess
import tarfile
import urllib.parse
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

# held out for independent evaluation: never used for demo data, training, validation or tuning
RESERVED_PACKAGES = (
    "tuxpaint-stamps-*",
    "tuxpaint-data",
    "mate-backgrounds",
    "kphotoalbum",
    "lomiri-wallpapers-*",
    "palapeli-data",
)


class ReservedPackageError(ValueError):
    """A package kept for independent evaluation was asked for."""


def refuse_reserved(package: str) -> None:
    if any(fnmatch.fnmatch(package, pattern) for pattern in RESERVED_PACKAGES):
        raise ReservedPackageError(f"{package}: reserved for independent evaluation, never used here")


def download(package: str, folder: Path) -> Path:
    """The package's .deb in `folder`, fetched with `apt-get download` unless it is there already."""
    refuse_reserved(package)
    found = sorted(folder.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", package], cwd=folder, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise RuntimeError(
            f"could not download {package} ({detail.strip().splitlines()[-1] if detail.strip() else error}); "
            f"fetch {package}_*.deb by hand into {folder}"
        ) from None
    return sorted(folder.glob(f"{package}_*.deb"))[-1]


def deb_version(deb: Path) -> str:
    """The version in a .deb's file name (name_version_arch.deb; apt writes ':' as %3a)."""
    return urllib.parse.unquote(deb.name.split("_")[1])


def read_deb_member(deb: bytes, prefix: str) -> bytes:
    """Return the member of an `ar` archive (a .deb) whose name starts with `prefix`."""
    pos = 8  # after b"!<arch>\n"
    while pos < len(deb):
        name = deb[pos : pos + 16].decode().strip()
        size = int(deb[pos + 48 : pos + 58].decode().strip())
        if name.startswith(prefix):
            return deb[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    raise ValueError(f"no member starting with {prefix!r} in the .deb")


def read_rcc(blob: bytes) -> dict[str, bytes]:
    """Unpack a Qt resource archive (format versions 1-3, zlib or uncompressed entries)."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource archive")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 22 if version >= 2 else 14
    files: dict[str, bytes] = {}

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        return blob[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[at : at + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", blob[at + 6 : at + 14])
            for child in range(first, first + count):
                walk(child, f"{prefix}{name}/" if index else "")
            return
        (data_offset,) = struct.unpack(">I", blob[at + 10 : at + 14])
        start = data + data_offset
        (size,) = struct.unpack(">I", blob[start : start + 4])
        payload = blob[start + 4 : start + 4 + size]
        if flags & 4:
            raise ValueError(f"{prefix}{name}: zstd-compressed entries are not supported")
        files[f"{prefix}{name}"] = zlib.decompress(payload[4:]) if flags & 1 else payload

    walk(0, "")
    return files


def deb_files(deb: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The package's regular files whose relative path (usr/share/...) `wanted` accepts."""
    refuse_reserved(deb.name.split("_")[0])
    found = {}
    with tarfile.open(fileobj=io.BytesIO(read_deb_member(deb.read_bytes(), "data.tar"))) as tar:
        for member in tar:
            path = member.name.removeprefix("./")
            if member.isfile() and wanted(path):
                found[path] = tar.extractfile(member).read()
    return found


def largest_jpeg(blob: bytes) -> Image.Image:
    """The largest JPEG embedded in a container (an Eet .edj keeps 8-16 sizes of its photo), decoded."""
    best, best_pixels = None, 0
    for match in re.finditer(rb"\xff\xd8\xff", blob):
        try:
            image = Image.open(io.BytesIO(blob[match.start() :]))
        except OSError:
            continue
        if image.format == "JPEG" and image.width * image.height > best_pixels:
            best, best_pixels = image, image.width * image.height
    if best is None:
        raise ValueError("no JPEG inside")
    best.load()
    return best


def parse_credits(readme: str) -> dict[str, dict[str, str]]:
    """Map file name -> {author, license, source} from a gcompris resource README."""
    credits: dict[str, dict[str, str]] = {}
    for block in readme.split("\n\n"):
        fields: dict[str, str] = {}
        files: list[str] = []
        key = ""
        for line in block.strip().splitlines():
            if ":" in line and line.split(":", 1)[0] in {"Copyright", "Source", "License", "Files", "Comments"}:
                key, value = (part.strip() for part in line.split(":", 1))
                if key == "Files" and value:
                    files.append(value)
                elif key != "Files":
                    fields[key] = value
            elif key == "Files" and line.strip():
                files.append(line.strip())
        for name in files:
            credits[name] = {
                "author": fields.get("Copyright", "unknown"),
                "license": fields.get("License", "unknown"),
                "source": fields.get("Source", ""),
            }
    return credits
