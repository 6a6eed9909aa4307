"""Every recipe file in the repository still loads into a RecipeConfig (a renamed config key
would otherwise break `durr train --config` on them only when someone reruns them)."""

from pathlib import Path

import pytest

from durr.train.pipeline import load_recipe

ROOT = Path(__file__).resolve().parents[1]
FAMILY_OF_PREFIX = {"ct-": "ct-lowdose", "mr-": "mr-rician", "gaussian-": "gaussian"}
RECIPES = sorted(ROOT.glob("models/*/train.yaml")) + sorted(ROOT.glob("scripts/recipes/*.yaml"))


def _family(path: Path) -> str:
    if path.name == "train.yaml":
        return path.parent.name
    return next(f for prefix, f in FAMILY_OF_PREFIX.items() if path.name.startswith(prefix))


def test_the_recipes_are_found():
    assert {p.parent.name for p in RECIPES if p.name == "train.yaml"} == {"ct-lowdose", "mr-rician", "gaussian"}
    assert any(p.parent.name == "recipes" for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_recipe_loads(path):
    cfg = load_recipe(_family(path), str(path))
    assert cfg.stage1.iterations == 6000 and cfg.stage1.batch == 32     # the GPU budget of every recipe
    assert 1 <= cfg.stage1.n_min < cfg.stage1.n_max


@pytest.mark.parametrize("family", ["ct-lowdose", "mr-rician", "gaussian"])
def test_shipped_config_was_trained_with_its_recipe(family):
    """The card's reproduce command uses models/F/train.yaml: config.json's recipe must be that file's
    (stage 1, stage 2, baseline and bank; the fitted stopping wrappers live in model.policy)."""
    import json

    trained = json.loads((ROOT / "models" / family / "config.json").read_text())["recipe"]
    recipe = load_recipe(family, str(ROOT / "models" / family / "train.yaml")).to_dict()
    for section in ("stage1", "stage2", "baseline"):
        assert trained[section] == {k: recipe[section][k] for k in trained[section]}, section
    assert trained["bank_per_slice"] == recipe["bank_per_slice"]
    assert trained["model"]["unit"] == recipe["model"]["unit"]
    assert list(trained["model"]["policy"]["features"]) == list(recipe["model"]["policy"]["features"])
