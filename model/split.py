"""Deterministic, class-stratified train/val/test split, kept as a manifest.

Unlike the original project, nothing is moved or deleted: the split is a JSON file listing
paths relative to the data folder. Listing is sorted and sampling seeded, so the same data
and seed give the same split on every machine. `python -m utils.split_data` writes one.

Two layouts are understood:
- AFHQ: root/train/<class>/*.jpg and root/val/<class>/*.jpg. `retain` of each is kept; the
  test set is drawn from val (as the original moved 50 val images to test).
- Any other folder: root/<class>/*.jpg (or images directly in root). `retain` is kept, then
  test and val sets are drawn from it.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

from constants import AFHQ_DIR, DEMO_DIR, DEMO_TEST_SIZE, HELD_OUT_SHARE, RETAIN, SEED, TEST_SIZE
from model.dataset import list_images

SPLITS = ("train", "val", "test")


def group_by_class(root: Path, folder: Path) -> dict[str, list[str]]:
    """Relative image paths under `folder`, grouped by their class (first sub-folder)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for path in list_images(folder):
        relative = path.relative_to(folder)
        label = relative.parts[0] if len(relative.parts) > 1 else ""
        groups[label].append(path.relative_to(root).as_posix())
    return dict(sorted(groups.items()))


def stratified_take(groups: dict[str, list[str]], count: int, rng: random.Random) -> tuple[dict, dict]:
    """Draw `count` items spread over the classes in proportion to their size.

    Returns (taken, rest), both grouped by class. Shares are rounded by largest remainder so
    the total is exactly `count`.
    """
    total = sum(len(items) for items in groups.values())
    count = min(count, total)
    exact = {label: count * len(items) / total if total else 0.0 for label, items in groups.items()}
    shares = {label: int(share) for label, share in exact.items()}
    by_remainder = sorted(exact, key=lambda label: exact[label] - shares[label], reverse=True)
    for label in by_remainder[: count - sum(shares.values())]:
        shares[label] += 1
    taken, rest = {}, {}
    for label, items in groups.items():
        shuffled = rng.sample(items, len(items))
        taken[label], rest[label] = sorted(shuffled[: shares[label]]), sorted(shuffled[shares[label] :])
    return taken, rest


def retain_fraction(groups: dict[str, list[str]], retain: float, rng: random.Random) -> dict[str, list[str]]:
    kept, _ = stratified_take(groups, round(retain * sum(map(len, groups.values()))), rng)
    return kept


def make_split(
    root: str | Path,
    retain: float = RETAIN,
    test_size: int = TEST_SIZE,
    val_size: int | None = None,
    seed: int = SEED,
) -> dict:
    """Split the images under `root`; returns the manifest (see module docstring).

    val_size applies to the folder-per-class layout only (AFHQ has its own val set); it
    defaults to test_size.
    """
    root = Path(root)
    if not 0 < retain <= 1:
        raise ValueError(f"retain must be in (0, 1], got {retain}")
    rng = random.Random(seed)
    if is_afhq_layout(root):
        train = retain_fraction(group_by_class(root, root / "train"), retain, rng)
        val = retain_fraction(group_by_class(root, root / "val"), retain, rng)
        test, val = stratified_take(val, test_size, rng)
    else:
        groups = group_by_class(root, root)  # a missing folder: FileNotFoundError from list_images
        kept = retain_fraction(groups, retain, rng)
        test, rest = stratified_take(kept, test_size, rng)
        val, train = stratified_take(rest, test_size if val_size is None else val_size, rng)
    parts = zip(SPLITS, (train, val, test), strict=True)
    splits = {name: sorted(p for items in part.values() for p in items) for name, part in parts}
    if not any(splits.values()):
        raise ValueError(f"{root}: no images (is the folder empty?)")
    if not all(splits.values()):
        counts = {name: len(items) for name, items in splits.items()}
        raise ValueError(
            f"{root}: too few images for a train/val/test split ({counts}); hold out fewer or keep more (retain)"
        )
    return {
        "root": root.as_posix(),
        "seed": seed,
        "retain": retain,
        "counts": {name: len(items) for name, items in splits.items()},
        **splits,
    }


def is_afhq_layout(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "val").is_dir()


def default_data_dir() -> Path:
    """AFHQ when it has been downloaded (utils/download.py), else the embedded demo photos."""
    return AFHQ_DIR if is_afhq_layout(AFHQ_DIR) else DEMO_DIR


def default_split(root: str | Path | None = None, seed: int = SEED) -> dict:
    """The project's standard split of `root` (default: `default_data_dir()`).

    AFHQ keeps the original's 10% and 50 test images; any other folder (like the demo set)
    keeps everything and holds out DEMO_TEST_SIZE images each for val and test, or fewer in
    a small folder (HELD_OUT_SHARE each, at least one), so most of the photos still train.
    """
    root = Path(root) if root is not None else default_data_dir()
    if is_afhq_layout(root):
        return make_split(root, RETAIN, TEST_SIZE, seed=seed)
    count = len(list_images(root))
    held_out = min(DEMO_TEST_SIZE, max(1, round(HELD_OUT_SHARE * count)))
    return make_split(root, 1.0, held_out, seed=seed)


def load_split(path: str | Path) -> dict:
    """Read a manifest written by `make_split`, checking that it is one."""
    try:
        manifest = json.loads(Path(path).read_text())
        assert all(isinstance(manifest[name], list) for name in SPLITS)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as error:
        raise ValueError(f"{path}: not a split manifest ({error!r})") from error
    return manifest
