"""Paths and default hyper-parameters shared by the package, the CLIs and the notebook.

Every path is relative to the repository root, so a clone works wherever it lives.
Environment variables override the data and output folders without editing code:
DENOISE_DATA_DIR, DENOISE_IMAGE_DIR, DENOISE_RUNS_DIR.
"""

import os
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parent

DATA_DIR = Path(os.environ.get("DENOISE_DATA_DIR", ROOT_DIR / "data"))
IMAGE_DIR = Path(os.environ.get("DENOISE_IMAGE_DIR", ROOT_DIR / "image"))
RUNS_DIR = Path(os.environ.get("DENOISE_RUNS_DIR", ROOT_DIR / "runs"))
STORAGE_DIR = ROOT_DIR / "model" / "storage"
CHECKPOINT_PATH = STORAGE_DIR / "trained_unet.pth"  # shipped weights; training never writes here

DEMO_DIR = ROOT_DIR / "data" / "demo"  # embedded photos, tracked in git
AFHQ_DIR = DATA_DIR / "afhq"  # where utils/download.py puts AFHQ
SPLITS_DIR = DATA_DIR / "splits"  # split manifests
PRETRAIN_DIR = DATA_DIR / "pretrain"  # the shipped denoiser's training set (utils/build_train_data.py)
KAGGLE_DATASET = "andrewmvd/animal-faces"

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# Noise: sigma is on the [0, 1] pixel scale. 0.5 is the original project's level.
NOISE_SIGMA = 0.5
SEED = 0

# Split (the original kept 10% of AFHQ and moved 50 val images to test)
RETAIN = 0.1
TEST_SIZE = 50
DEMO_TEST_SIZE = 12  # val and test images each, for small folders such as the demo set
HELD_OUT_SHARE = 0.15  # ... but at most this share of a folder each, so a small one still trains
