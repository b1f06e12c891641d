"""The plug-in examples of docs/architecture.md run as written: each registers, a recipe names it,
and the model (and task) train a step with it."""

import importlib
import re
from pathlib import Path

import pytest
import torch

from tests.conftest import TEXTS, mixed_items, tiny_recipe

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_an_example_per_plug_in_point():
    registered = [re.search(r"depictqa\.(\w+)\.register", b) for b in BLOCKS]
    assert {m.group(1) for m in registered if m} == {"projectors", "conditioners", "objectives"}


@pytest.mark.parametrize("block", [b for b in BLOCKS if ".register(" in b], ids=lambda b: b.split('"')[1])
def test_a_registration_example_trains_a_step(block):
    from depictqa.build import build_model
    from depictqa.data.collate import collate
    from depictqa.task import DepictQATask

    family, name = re.search(r'depictqa\.(\w+)\.register\("([\w-]+)"\)', block).groups()
    registry = importlib.import_module(f"depictqa.{family}")
    try:
        exec(compile(block, str(DOC), "exec"), {})
        assert name in registry.list()
        recipe = tiny_recipe(re.search(r"# recipe: (.*)", block).group(1))
        torch.manual_seed(0)
        model = build_model(recipe, texts=TEXTS).train()
        task = DepictQATask(model, recipe)
        batch = collate(mixed_items(model), packed=True)
        loss = task.training_step(batch, 0)  # the answer loss plus any objective
        assert torch.isfinite(loss)
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    finally:
        registry.REGISTRY._entries.pop(name, None)  # other tests iterate the registries


def test_the_task_table_example_holds():
    block = next(b for b in BLOCKS if "ImageLayout" in b)
    exec(compile(block, str(DOC), "exec"), {})
