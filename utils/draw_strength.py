"""Draw the README's strength figure from the shipped denoiser, so it cannot go stale.

    python -m utils.draw_strength          # image/strength_example.png

A crop of scikit-image's chelsea (an evaluation photo, never trained on) with Gaussian noise of
sigma 25/255 (seeded), denoised at strength 0.5, 1 and 1.5: the estimated sigma times that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import constants as C
from model.config_flags import make_parser
from model.denoise import denoise, estimate_image_sigma

STRENGTHS = (0.5, 1.0, 1.5)
SIGMA = 25 / 255


def draw(path: Path = C.IMAGE_DIR / "strength_example.png") -> Path:
    import matplotlib.pyplot as plt
    import skimage.data

    from model.plots import save_figure

    clean = skimage.data.chelsea()[40:232, 80:336].astype(np.float32) / 255
    noisy = clean + np.random.default_rng(C.SEED).normal(0, SIGMA, clean.shape).astype(np.float32)
    estimate = estimate_image_sigma(noisy)
    panels = [("noisy, sigma 25/255", noisy)]
    panels += [(f"strength {s:g} (sigma {255 * s * estimate:.0f}/255)", denoise(noisy, strength=s)) for s in STRENGTHS]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8))
    for axis, (title, image) in zip(axes, panels, strict=True):
        score = 10 * np.log10(1 / np.mean((np.clip(image, 0, 1) - clean) ** 2))
        axis.imshow(np.clip(image, 0, 1))
        axis.set_title(f"{title}\n{score:.2f} dB", fontsize=9)
        axis.axis("off")
    figure.suptitle("Denoising strength: < 1 keeps more texture, > 1 removes more", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.92))
    return save_figure(figure, path)


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--out", type=Path, default=C.IMAGE_DIR / "strength_example.png", help="where the figure goes")
    print(f"wrote {draw(parser.parse_args(argv).out)}")


if __name__ == "__main__":
    main()
