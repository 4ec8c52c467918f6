"""Estimate the Gaussian noise level of a photo, so a noise-level-aware model can denoise blindly.

The estimator is the patch-PCA method of Chen, Zhu and Heng ("An Efficient Statistical Method
for Image Noise Level Estimation", ICCV 2015). Natural images occupy a low-dimensional
subspace of patch space, so the smallest eigenvalues of the patch covariance hold only noise:
we take the longest tail of the eigenvalue spectrum whose mean does not exceed its median
(the signature of pure noise) and return the square root of that mean. Unlike the wavelet
MAD estimator, fur and grass textures barely bias it upward.
"""

from __future__ import annotations

import numpy as np

PATCH = 7
MAX_PATCHES = 50_000


def _noise_tail(eigenvalues: np.ndarray) -> float:
    """Mean of the longest tail of ascending eigenvalues whose mean does not exceed its median."""
    for count in range(len(eigenvalues), 0, -1):
        tail = eigenvalues[:count]
        if tail.mean() <= np.median(tail):
            return float(tail.mean())
    return float(eigenvalues[0])


def estimate_sigma(image: np.ndarray, patch: int = PATCH, max_patches: int = MAX_PATCHES, seed: int = 0) -> float:
    """Noise std of an H x W (x C) image on its own scale (for [0, 1] images: 25/255 ~ 0.098).

    Patches span all channels (signal is strongly correlated across colours, noise is not,
    which leaves more pure-noise dimensions). At most `max_patches` random patches are used,
    so time and memory stay bounded on large photos. Returns 0.0 for an image smaller than
    one patch.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or min(image.shape[:2]) < patch:
        return 0.0
    windows = np.lib.stride_tricks.sliding_window_view(image, (patch, patch), axis=(0, 1))  # h, w, C, p, p
    rows, cols = windows.shape[:2]
    count = min(max_patches, rows * cols)
    picks = np.random.default_rng(seed).choice(rows * cols, count, replace=False)
    patches = windows[picks // cols, picks % cols].reshape(count, -1)
    patches = patches - patches.mean(axis=0)
    eigenvalues = np.clip(np.linalg.eigvalsh(patches.T @ patches / count), 0, None)  # ascending
    return float(np.sqrt(_noise_tail(eigenvalues)))
