"""The README shows only what exists: its code examples run as written, its figures and
commands are in the repository."""

import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def code_blocks(section: str, language: str) -> list[str]:
    """The fenced blocks of one `### ...` or `## ...` section, in order."""
    body = README.split(section, 1)[1]
    body = re.split(r"\n##+ ", body, maxsplit=1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)


def test_the_model_in_your_code_example_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    (block,) = code_blocks("### 2. The model in your own code", "python")
    namespace = {}
    exec(block, namespace)
    assert namespace["y"].shape == namespace["x"].shape == (2, 3, 100, 120)
    assert sum(p.numel() for p in namespace["net"].parameters()) == 31_037_763
    assert namespace["shipped"].config["noise_level_input"]


def test_the_python_denoise_example_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    (block,) = code_blocks("### 3. Denoise your photos", "python")
    calls = [line for line in block.splitlines() if line.startswith("clean = denoise(")]
    assert len(calls) >= 5
    namespace = {}
    exec(block, namespace)
    noisy, clean = namespace["noisy"], namespace["clean"]
    assert clean.shape == noisy.shape and np.isfinite(clean).all() and not np.array_equal(clean, noisy)


@pytest.mark.slow
def test_the_command_line_examples_run(tmp_path):
    (block,) = code_blocks("### 3. Denoise your photos", "bash")
    commands = [line.split("#")[0].split() for line in block.splitlines() if line.startswith("python -m model.denoise")]
    assert len(commands) == 3
    for words in commands:
        words = [str(tmp_path / "out") if word == "denoised/" else word for word in words]
        result = subprocess.run([sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"cat_denoised.png", "owl_denoised.png", "cow_denoised.tif"} <= written


def test_every_figure_the_readme_shows_is_in_the_repository():
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert {"image/strength_example.png", "image/unet_architecture.png", "image/denoising_flowchart.png"} <= set(
        figures
    )
    assert all((ROOT / figure).is_file() for figure in figures)


def test_every_module_the_readme_runs_exists():
    modules = set(re.findall(r"python3? -m ([\w.]+)", README)) - {"torch.distributed.run"}
    assert {"model.denoise", "model.train", "model.ship_weights", "benchmarks.eval_quality"} <= modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module


def test_the_readme_is_short_enough_to_read():
    assert len(README.split()) < 1800


def test_the_readme_the_model_card_and_the_checkpoint_agree():
    import torch

    card = (ROOT / "model" / "storage" / "MODEL_CARD.md").read_text()
    rows = [line for line in README.splitlines() if line.startswith(("| demo test photos:", "| standard photos:"))]
    assert len(rows) == 4 and all(row in card for row in rows)
    checkpoint = torch.load(ROOT / "model" / "storage" / "trained_unet.pth", weights_only=True)
    assert f"In all {checkpoint['training_minutes']} training minutes" in card
    assert len(card.splitlines()) <= 200
    assert (ROOT / "model" / "storage" / "TRAINING_LOG.md").is_file()
