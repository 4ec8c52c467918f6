"""The README shows only calls that exist: its denoise() examples run as written."""

import re

import numpy as np

from tests.conftest import ROOT


def readme_python_api_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("clean = denoise(")]


def test_the_readme_denoise_calls_run():
    from model.denoise import denoise

    lines = readme_python_api_lines()
    assert len(lines) >= 5
    rng = np.random.default_rng(0)
    photo_0_255 = (rng.random((40, 48, 3)) * 255).astype(np.float32)
    namespace = {"denoise": denoise, "noisy": photo_0_255 / 255, "photo_0_255": photo_0_255}
    for line in lines:
        exec(line, namespace)
        assert namespace["clean"].shape == (40, 48, 3), line


def test_every_figure_the_readme_shows_is_in_the_repository():
    text = (ROOT / "README.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "image/strength_example.png" in figures
    assert all((ROOT / figure).is_file() for figure in figures)
