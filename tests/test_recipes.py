"""The recorded recipes: each is a valid training config, and a continued one starts where its parent ended."""

from pathlib import Path

import pytest

import constants as C
from model import recipes
from model.tasks import Colorize, Denoise, SuperResolution
from model.unet import UNet


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_recipe_builds_its_task_and_network(name):
    config = recipes.RECIPES[name]
    kinds = {"denoise": Denoise, "sr": SuperResolution, "colorize": Colorize}
    assert isinstance(config.make_task(), kinds[config.task])
    UNet(config.model)
    assert name in recipes.MINUTES


def test_a_continued_recipe_starts_from_its_parents_best_weights():
    for child, parent in (("ours-continued", "ours"), ("ours-continued-2", "ours-continued")):
        assert recipes.RECIPES[child].init == str(Path(recipes.RECIPES[parent].out_dir) / "best.pth")
    assert recipes.RECIPES["sr-x2"].init == str(C.CHECKPOINT_PATH)  # fine-tunes start from the shipped weights


def test_without_the_training_set_it_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setattr(recipes, "SPLIT_FILE", tmp_path / "split.json")
    monkeypatch.setattr("sys.argv", ["recipes", "--recipe", "ours"])
    with pytest.raises(SystemExit, match="python -m utils.build_train_data"):
        recipes.main()
