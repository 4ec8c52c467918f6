"""Get AFHQ (Kaggle `andrewmvd/animal-faces`) into data/afhq.

    python -m utils.download                       # kagglehub, else the kaggle CLI
    python -m utils.download --from archive.zip    # a zip you downloaded by hand (or a folder)

Kaggle needs internet and credentials; without them this says how to get the data by hand.
The files are copied, never moved: a zip or folder you pass in is left as it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from constants import AFHQ_DIR, KAGGLE_DATASET
from model.config_flags import make_parser
from model.split import is_afhq_layout

MANUAL_STEPS = (
    f"download https://www.kaggle.com/datasets/{KAGGLE_DATASET} by hand, then run "
    "`python -m utils.download --from <the zip>` (or unzip it so that data/afhq/train/cat/ exists)"
)


class DownloadError(RuntimeError):
    """AFHQ could not be fetched or imported; the message says what to do instead."""


def find_afhq_root(folder: Path) -> Path:
    """The folder holding train/ and val/ inside an extracted archive (often folder/afhq)."""
    for candidate in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if is_afhq_layout(candidate):
            return candidate
    raise DownloadError(f"{folder}: no AFHQ layout (train/ and val/ with class folders) inside")


def import_afhq(source: str | Path, dest: str | Path = AFHQ_DIR) -> Path:
    """Copy AFHQ from a zip archive or a folder into `dest` (written whole or not at all)."""
    source, dest = Path(source), Path(dest)
    if not source.exists():
        raise DownloadError(f"{source}: no such file or folder")
    if dest.exists():
        raise DownloadError(f"{dest}: already exists; remove it first to import again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        if source.is_dir():
            root = find_afhq_root(source)
        elif zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                archive.extractall(tmp)
            root = find_afhq_root(Path(tmp))
        else:
            raise DownloadError(f"{source}: neither a zip archive nor a folder")
        staged = Path(tmp) / "staged"
        shutil.copytree(root, staged)
        os.replace(staged, dest)
    return dest


def fetch_with_kagglehub() -> Path:
    import kagglehub  # imported here so the rest of the project works without it

    return Path(kagglehub.dataset_download(KAGGLE_DATASET))


def fetch_with_kaggle_cli(folder: Path) -> Path:
    if shutil.which("kaggle") is None:
        raise DownloadError("the kaggle command is not installed")
    command = ["kaggle", "datasets", "download", "-d", KAGGLE_DATASET, "-p", str(folder), "--unzip"]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise DownloadError((result.stderr or result.stdout).strip().splitlines()[-1])
    return folder


def download_afhq(dest: str | Path = AFHQ_DIR) -> Path:
    """Fetch AFHQ into `dest` through kagglehub, falling back to the kaggle CLI."""
    dest = Path(dest)
    if is_afhq_layout(dest):
        return dest
    reasons = []
    try:
        return import_afhq(fetch_with_kagglehub(), dest)
    except Exception as error:  # noqa: BLE001 (offline, no credentials, not installed: all mean "try the CLI")
        reasons.append(f"kagglehub: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return import_afhq(fetch_with_kaggle_cli(Path(tmp)), dest)
        except (DownloadError, OSError) as error:
            reasons.append(f"kaggle CLI: {error}")
    raise DownloadError(f"cannot download AFHQ ({'; '.join(reasons)}). Instead, {MANUAL_STEPS}")


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--from", dest="source", type=Path, help="an AFHQ zip or folder already on disk")
    parser.add_argument("--dest", type=Path, default=AFHQ_DIR, help="where AFHQ is unpacked")
    args = parser.parse_args()
    try:
        dest = import_afhq(args.source, args.dest) if args.source else download_afhq(args.dest)
    except DownloadError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"AFHQ is in {dest}")


if __name__ == "__main__":
    main()
