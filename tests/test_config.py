import subprocess
import sys

import pytest

from depictqa.config import RecipeError, load_recipe
from tests.conftest import ROOT, tiny_recipe


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(RecipeError, match="optim.lrr"):
        tiny_recipe("optim.lrr=0.1")


def test_wrong_type_names_the_key():
    with pytest.raises(RecipeError, match="trainer.max_steps"):
        tiny_recipe("trainer.max_steps=many")


def test_unknown_component_lists_choices():
    with pytest.raises(RecipeError, match="valid: abstractor, linear, mlp, official-abstractor"):
        tiny_recipe("model.projector.name=resampler")


def test_projector_block_with_another_components_arguments():
    with pytest.raises(RecipeError, match=r"model.projector: projector 'mlp' has no argument 'num_queries'"):
        tiny_recipe("model.projector.num_queries=64")


def test_changing_name_replaces_the_block():
    r = tiny_recipe("model.projector={name: abstractor, num_queries: 4, num_heads: 2}")
    assert r.model.projector.name == "abstractor" and "hidden_dim" not in r.model.projector
    r = load_recipe(ROOT / "recipes/depictqa_wild.yaml", ROOT / "recipes/wild_abstractor.yaml", check_local=False)
    assert dict(r.model.projector) == {"name": "official-abstractor", "train": "full"}  # linear's block replaced


def test_missing_weights_path_fails_before_building(tmp_path):
    with pytest.raises(RecipeError, match="model.llm.path: .* does not exist"):
        tiny_recipe(f"model.llm.path={tmp_path}/nowhere/vicuna")


def test_bad_choice_lists_valid():
    with pytest.raises(RecipeError, match="one of cosine, linear, constant"):
        tiny_recipe("optim.schedule=step")
    with pytest.raises(RecipeError, match="model.encoder.train: 'lora'"):
        tiny_recipe("model.encoder.train=lora")


def test_cli_exits_2_with_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "depictqa.cli", "validate", str(ROOT / "recipes/tiny.yaml"),
                           "optim.lrr=1", "--no-build"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "optim.lrr" in proc.stderr


def test_unknown_image_flip_lists_choices():
    with pytest.raises(RecipeError, match="data.image.flip: 'rotate' is not one of h, hv, dihedral"):
        tiny_recipe("data.image.flip=rotate")
    assert tiny_recipe("data.image.flip=dihedral").data.image.flip == "dihedral"
