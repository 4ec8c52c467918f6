"""Where the denoiser's error lies, brightness or colour, noise left in or detail lost: ours against CBM3D.

    python -m benchmarks.colour_error                       # the standard photos at 5/255
    python -m benchmarks.colour_error --sets demo-test standard --sigmas 5/255 15/255

A PSNR says how far behind CBM3D we are, not why. Each photo's error (output minus clean) is
split along an orthonormal opponent colour basis: brightness (R + G + B) and two colour axes
(R - B, R - 2G + B). White noise stays white in that basis, sigma² on each axis. Per part:

- error: the mean squared error, in (1/255)² (the colour part: the mean of its two axes);
- left: the share of the noise left in, the error's regression on the noise;
- lost: the error with that share of the noise taken out, in (1/255)²: detail smoothed away
  or invented. A denoiser that only shrinks the noise has none.

"colour share" is the part of our excess squared error over CBM3D's that lies in colour. The
photos, their noise and the outputs' clipping are those of benchmarks/eval_quality.py. CBM3D
runs here (40 to 65 s per MP on 2 cores): this needs its outputs, not eval_quality's cached scores.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

import constants as C
from benchmarks.eval_quality import PHOTO_SETS, SIGMAS, cbm3d, methods
from model.checkpoint import CheckpointError
from model.config_flags import make_parser
from model.dataset import seeded_noisy_copy

OPPONENT = np.array([[1, 1, 1], [1, 0, -1], [1, -2, 1]]) / np.sqrt([[3], [2], [6]])  # rows: orthonormal axes
LEVEL = 255**2  # squared errors in (1/255)^2


def split_error(output: np.ndarray, clean: np.ndarray, noise: np.ndarray) -> dict[str, np.ndarray]:
    """Per opponent axis (brightness, red-blue, green-magenta) of (H, W, 3) images: the mean squared
    error, the share of `noise` left in, and the error that share of the noise does not explain."""
    error, noise = (np.asarray(a, np.float64) @ OPPONENT.T for a in (output - clean, noise))
    left = (error * noise).sum((0, 1)) / (noise * noise).sum((0, 1))
    return {
        "error": (error**2).mean((0, 1)),
        "left": left,
        "lost": ((error - left * noise) ** 2).mean((0, 1)),
    }


def compare(
    photos: dict[str, np.ndarray], sigma: float, ours: Callable, reference: Callable = cbm3d
) -> list[dict[str, float]]:
    """One row per photo: ours and the reference (functions of noisy, sigma), each error split."""
    rows = []
    for name, clean in photos.items():
        noisy = seeded_noisy_copy(clean, sigma, name)
        parts = {}
        for method, denoise in (("ours", ours), ("CBM3D", reference)):
            split = split_error(np.clip(denoise(noisy, sigma), 0, 1), clean, noisy - clean)
            parts[method] = {
                "error": split["error"].mean(),
                "brightness": split["error"][0],
                "colour": split["error"][1:].mean(),
                "left": split["left"][1:].mean(),
                "lost": split["lost"][1:].mean(),
            }
        excess = 3 * (parts["ours"]["error"] - parts["CBM3D"]["error"])  # summed over the 3 axes
        colour_excess = 2 * (parts["ours"]["colour"] - parts["CBM3D"]["colour"])
        margin = 10 * np.log10(parts["CBM3D"]["error"] / parts["ours"]["error"])
        rows.append({"photo": name, "margin": margin, "colour share": colour_excess / excess, **parts})
    return rows


def both(row: dict, key: str, scale: float = LEVEL, digits: int = 1) -> str:
    """Ours / CBM3D for one measure of a row."""
    return " / ".join(f"{row[method][key] * scale:.{digits}f}" for method in ("ours", "CBM3D"))


def markdown(rows_by_case: dict[tuple[str, str], list[dict]]) -> str:
    header = (
        "| images | sigma | photo | ours - CBM3D (dB) | colour share | brightness error | colour error "
        "| colour noise left | colour detail lost |"
    )
    lines = [header, "|" + " --- |" * 9]
    for (set_name, sigma_name), rows in rows_by_case.items():
        for row in rows:
            share = f"{row['colour share']:.0%}" if row["margin"] < 0 else ""
            measures = [both(row, "brightness"), both(row, "colour"), both(row, "left", 1, 2), both(row, "lost")]
            cells = [set_name, sigma_name, row["photo"], f"{row['margin']:+.2f}", share, *measures]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--sets", nargs="+", choices=tuple(PHOTO_SETS), default=["standard"], help="photo sets")
    parser.add_argument("--sigmas", nargs="+", choices=SIGMAS, default=["5/255"], help="noise levels")
    parser.add_argument("--weights", type=Path, default=C.CHECKPOINT_PATH, help="ours (default: the shipped weights)")
    args = parser.parse_args()
    try:
        ours = methods([SIGMAS[name] for name in args.sigmas], args.weights, only=["ours"])["ours"]
    except CheckpointError as error:
        raise SystemExit(f"error: {error}") from None
    results = {}
    for set_name in args.sets:
        photos = PHOTO_SETS[set_name]()
        for sigma_name in args.sigmas:
            results[set_name, sigma_name] = compare(photos, SIGMAS[sigma_name], ours)
            print(f"{set_name} {sigma_name}: done", flush=True)
    print("\nours / CBM3D; errors in (1/255)^2, colour: the mean of its two axes\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
