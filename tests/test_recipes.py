"""Every shipped recipe validates and builds, at reduced size, with its real architecture."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from depictqa.config import load_recipe
from tests.conftest import ROOT, TEXTS

RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))
MAIN = [p for p in RECIPES if p.parent.name == "recipes" and p.name != "base.yaml"]
OVERLAYS = [p for p in RECIPES if p not in MAIN]
# hub id -> the architecture it names, to build the same family with random weights
FAMILIES = {"lmsys/vicuna-7b-v1.5": "llama", "Qwen/Qwen2-7B-Instruct": "qwen2",
            "mistralai/Mistral-7B-Instruct-v0.3": "mistral"}
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def test_recipes_are_found():
    assert len(MAIN) >= 5 and len(OVERLAYS) >= 5


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_recipe_opens_with_a_comment(path):
    assert path.read_text().startswith("#")


def reduced(recipe, tmp_path: Path):
    """Same component names and families, random weights, tiny sizes."""
    from depictqa.llms.tokenizers import train_bpe

    enc, llm = recipe.model.encoder, recipe.model.llm
    over = {"model": {"encoder": {}, "llm": {}}}
    if enc.name == "clip":
        over["model"]["encoder"] = {"path": None, "config": {"hidden_size": 32, "intermediate_size": 64,
                                                             "num_hidden_layers": 2, "num_attention_heads": 2,
                                                             "patch_size": 14, "image_size": 28}}
    if enc.name == "timm":
        over["model"]["encoder"] = {"pretrained": False, "model_kwargs": {"depth": 1, "embed_dim": 32, "num_heads": 2}}
    if llm.get("path"):
        tok = train_bpe(TEXTS, vocab_size=300)
        tok.chat_template = CHAT
        tok.save_pretrained(tmp_path / "tok")
        over["model"]["llm"] = {"path": None, "dtype": "float32", "tokenizer": str(tmp_path / "tok"),
                                "config": {"model_type": FAMILIES[llm.path], "hidden_size": 32, "intermediate_size": 64,
                                           "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2}}
    if recipe.model.projector.name == "abstractor":
        over["model"]["projector"] = {"num_heads": 2, "hidden_dim": 32}
    return OmegaConf.merge(recipe, over)


@pytest.mark.parametrize("path", MAIN + OVERLAYS, ids=lambda p: str(p.relative_to(ROOT)))
def test_recipe_validates_and_builds_reduced(path, tmp_path):
    from depictqa.build import build_model
    from depictqa.data.collate import collate
    from tests.conftest import mixed_items

    # the shards and GPUs they name are not here (check_local=False); everything else is checked
    recipe = (load_recipe(path, check_local=False) if path in MAIN
              else load_recipe(ROOT / "recipes/depictqa_wild.yaml", path, check_local=False))
    model = build_model(reduced(recipe, tmp_path), texts=TEXTS)
    out = model(collate(mixed_items(model)))
    assert torch.isfinite(out.loss)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert "projector" in trainable
    if recipe.model.llm.train == "lora":
        assert all("lora_" in n for n, p in model.llm.named_parameters() if p.requires_grad)
