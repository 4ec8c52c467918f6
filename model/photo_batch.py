"""Turn what a user names on the command line into (photo, output) pairs, whatever the folders hold.

Folders are walked recursively in sorted order. Every entry that cannot be used gets one line
naming it and saying why (a symbolic-link loop, a broken link, a folder that cannot be read, a
FIFO or device), and the batch goes on; files whose format Pillow cannot open, and hidden files
and folders (macOS writes a `._photo.jpg` of metadata beside every photo it copies), are counted
as skipped, not images. A file named directly is always tried. Two photos whose outputs would
share a name (`photo.tif` and `photo.png`) get the source extension in their output names.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from model.photo_io import readable_extensions


@dataclass
class Batch:
    pairs: list[tuple[Path, Path]] = field(default_factory=list)  # (photo, output)
    problems: list[str] = field(default_factory=list)  # one line per entry that cannot be used
    skipped: int = 0  # files in folders that are not images, or hidden
    notes: list[str] = field(default_factory=list)  # harmless: the same photo named twice


def entry_problem(path: Path) -> str | None:
    """Why `path` cannot be read as a photo, in words, or None if it is a regular file or a folder."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"{path}: symbolic link loop"
        if error.errno == errno.ENOENT and path.is_symlink():
            return f"{path}: broken symbolic link (to {os.readlink(path)})"
        if error.errno == errno.ENOENT:
            return f"{path}: no such file or folder"
        return f"{path}: cannot be read ({error.strerror})"
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
    return f"{path}: not a regular file (a {kind})"


def walk(
    folder: Path, batch: Batch, extensions: set[str], output_dir: Path, visited: frozenset = frozenset()
) -> list[Path]:
    """Photos below `folder`, sorted; unusable entries go to batch.problems, other files to batch.skipped.
    `visited` holds the folders above, so a link back to one of them is reported, not followed.
    The output folder is not searched: a second run must not denoise the first run's outputs."""
    info = folder.stat()
    if (info.st_dev, info.st_ino) in visited:
        batch.problems.append(f"{folder}: symbolic link loop (back to a folder above it)")
        return []
    visited = visited | {(info.st_dev, info.st_ino)}
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        batch.problems.append(f"{folder}: cannot list the folder ({error.strerror})")
        return []
    photos = []
    for entry in entries:
        if entry.name.startswith("."):
            batch.skipped += 1
            continue
        problem = entry_problem(entry)
        if problem:
            batch.problems.append(problem)
        elif entry.is_dir() and entry.resolve() == output_dir:
            batch.notes.append(f"{entry}: the output folder; not searched")
        elif entry.is_dir():
            photos += walk(entry, batch, extensions, output_dir, visited)
        elif entry.suffix.lower() in extensions:
            photos.append(entry)
        else:
            batch.skipped += 1
    return photos


def output_names(sources: list[Path], output_dir: Path, suffix: str) -> list[Path]:
    """`<stem>_denoised.<suffix>`; where stems collide `<stem>_<ext>_denoised`, then a counter."""
    stems = Counter(s.stem for s in sources)
    names = [s.stem if stems[s.stem] == 1 else f"{s.stem}_{s.suffix.lstrip('.').lower()}" for s in sources]
    counts, taken = Counter(names), Counter()
    targets = []
    for name in names:
        taken[name] += 1
        unique = name if counts[name] == 1 else f"{name}_{taken[name]}"
        targets.append(output_dir / f"{unique}_denoised.{suffix}")
    return targets


def collect(items: list[Path], output_dir: Path, suffix: str) -> Batch:
    """The batch of files and folders the user named."""
    batch, extensions = Batch(), readable_extensions()
    sources: list[Path] = []
    for item in items:
        problem = entry_problem(item)
        if problem:
            batch.problems.append(problem)
        else:
            sources += walk(item, batch, extensions, output_dir.resolve()) if item.is_dir() else [item]
    seen: dict[Path, Path] = {}
    unique = []
    for source in sources:
        resolved = source.resolve()
        if resolved in seen:
            batch.notes.append(f"{source}: named twice (also as {seen[resolved]}); denoised once")
            continue
        seen[resolved] = source
        unique.append(source)
    batch.pairs = list(zip(unique, output_names(unique, output_dir, suffix), strict=True))
    return batch
