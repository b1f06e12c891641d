"""Sharing a checkpoint: `depictqa export` writes a loadable folder with a model card, the adapter
carries a real README, and `load_pretrained` takes a hub id (a local Hugging Face cache entry
stands in for the hub: offline, huggingface_hub resolves ``owner/name`` from the cache alone)."""

import json
import os

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import TEXTS, TINY_OVERRIDES, mixed_items

LORA = ["model.llm.train=lora", "model.llm.lora={r: 4, alpha: 8, dropout: 0.0}", "model.encoder.train=frozen",
        "data.sources={brief: {shards: 'data/brief/shard-{000000..000003}.tar', weight: 3}, "
        "regulariser: {shards: 'data/caption/*.tar'}}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder as `depictqa fit` and `depictqa evaluate --out` leave it: a LoRA checkpoint at
    step 10 (``checkpoints/last`` links to it), ``results.json`` and a figure."""
    from PIL import Image

    from depictqa.build import build_model
    from depictqa.checkpoint import save_pretrained, save_state
    from depictqa.config import load_recipe
    from depictqa.data.collate import collate

    recipe = load_recipe(overrides=[*TINY_OVERRIDES, *LORA], check_local=False)
    torch.manual_seed(0)
    model = build_model(recipe, texts=TEXTS)
    with torch.no_grad():  # a non-trivial adapter, so that losing it would show
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.eval()
    root = tmp_path_factory.mktemp("run")
    step = save_pretrained(model, recipe, root / "checkpoints" / "step-0000010")
    save_state(step, {"x": torch.zeros(1)}, {"global_step": 10})
    os.symlink(step.name, root / "checkpoints" / "last")
    (root / "results.json").write_text(json.dumps({"identification": {"n": 8, "accuracy": 0.75}}))
    (root / "figures").mkdir()
    Image.new("RGB", (8, 8)).save(root / "figures" / "confusion.png")
    batch = collate(mixed_items(model))
    return root, recipe, batch, model(batch).sample_loss


def front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return OmegaConf.to_container(OmegaConf.create(readme.split("---\n")[1]))


def test_adapter_readme_is_a_card_not_peft_template(run):
    root, *_ = run
    card = (root / "checkpoints/last/adapter/README.md").read_text()
    assert "[More Information Needed]" not in card  # PEFT's empty template
    assert "load_pretrained" in card and front_matter(card)["library_name"] == "peft"


def test_export_writes_a_loadable_folder_with_a_model_card(run, tmp_path):
    import depictqa
    from depictqa.cli import main

    root, recipe, batch, loss = run
    out = tmp_path / "shared"
    assert main(["export", str(root), "--out", str(out)]) == 0  # a run folder: its checkpoints/last
    assert {p.name for p in out.iterdir()} == {"README.md", "recipe.yaml", "trainable.safetensors", "adapter",
                                               "tokenizer", "figures"}  # no optimiser state
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "depictqa" and "depictqa" in meta["tags"]
    facts = meta["depictqa"]
    assert facts["recipe"]["llm"]["train"] == "lora" and facts["recipe"]["encoder"]["name"] == "tiny-vit"
    assert facts["training_data"] == {"brief": {"shards": "data/brief/shard-{000000..000003}.tar", "weight": 3},
                                      "regulariser": {"shards": "data/caption/*.tar", "weight": 1.0}}
    assert facts["evaluation"]["identification/accuracy"] == 0.75 and facts["trained_steps"] == 10
    assert "![confusion](figures/confusion.png)" in card and (out / "figures/confusion.png").is_file()
    assert "[More Information Needed]" not in (out / "adapter/README.md").read_text()
    loaded = depictqa.load_pretrained(out)
    torch.testing.assert_close(loaded(batch).sample_loss, loss)


def test_export_refuses_a_used_folder_and_a_non_checkpoint(run, tmp_path, capsys):
    from depictqa.cli import main

    root, *_ = run
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert main(["export", str(root), "--out", str(tmp_path / "used")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "new")]) == 2
    assert "is not a depictqa checkpoint" in capsys.readouterr().err


def _hub_cache(cache, repo_id, folder):
    """Put ``folder``'s files into a Hugging Face cache as the snapshot of ``repo_id``."""
    import shutil

    commit = "1" * 40
    entry = cache / f"models--{repo_id.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    shutil.copytree(folder, entry / "snapshots" / commit)


def test_load_pretrained_takes_a_hub_id(run, tmp_path, monkeypatch):
    from huggingface_hub import constants

    import depictqa
    from depictqa.checkpoint import CheckpointError, recipe_of

    root, recipe, batch, loss = run
    depictqa.model_card.export(root / "checkpoints" / "last", tmp_path / "shared")
    _hub_cache(tmp_path / "cache", "someone/tiny-depictqa", tmp_path / "shared")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # no folder called someone/ here: it is a hub id
    loaded = depictqa.load_pretrained("someone/tiny-depictqa")
    torch.testing.assert_close(loaded(batch).sample_loss, loss)
    assert recipe_of("someone/tiny-depictqa").model.llm.train == "lora"
    with pytest.raises(CheckpointError, match="someone/other-model.*HF_HUB_OFFLINE"):
        depictqa.load_pretrained("someone/other-model")
