"""Training objectives: every registered one through the same contract, then what the
``distortion`` objective reads and predicts, and how the task and recipes use objectives."""

import pytest
import torch

from depictqa import objectives
from depictqa.data.collate import collate
from depictqa.objectives.distortion import DistortionObjective
from tests.conftest import TEXTS, mixed_items, tiny_recipe

META = [{"distortions_A": [{"category": "blur", "severity": 4}], "distortions_B": [], "quality_A": 45.0,
         "quality_B": 100.0},
        {"distortions": [{"category": "noise", "severity": 3}], "quality": 60.0}, {},
        {"distortions_A": [], "distortions_B": [{"category": "pixelate", "severity": 5}], "quality_A": 100.0,
         "quality_B": 30.0}]
# registry name -> the argument sets the contract runs (a newly registered objective must be added)
EXAMPLES = {"distortion": [{"source": "projected"}, {"source": "lm", "preference": True}]}
CASES = [(name, kwargs) for name, many in EXAMPLES.items() for kwargs in many]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES]


def model_and_items():
    from depictqa.build import build_model

    torch.manual_seed(0)
    model = build_model(tiny_recipe(), texts=TEXTS)
    items = mixed_items(model)  # compare FR (3 images), assess NR (1), caption (1), compare NR (2)
    for item, meta in zip(items, META):
        item.meta = dict(meta)
    return model, items


def build_objective(name, kwargs, model):
    torch.manual_seed(2)
    return objectives.build(name, width=model.llm.hidden_size, **kwargs)


def test_every_registered_objective_has_contract_examples():
    assert objectives.list() and set(objectives.list()) == set(EXAMPLES)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_contract_finite_loss_and_gradients_reach_what_trains(name, kwargs):
    model, items = model_and_items()
    objective = build_objective(name, kwargs, model)
    batch = collate(items, packed=True)
    loss = objective(batch, model.train()(batch))
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.parameters())
    reached = [p.grad for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert reached, "the objective trains nothing of the model"


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_contract_a_sample_s_loss_does_not_depend_on_the_other_samples(name, kwargs):
    model, items = model_and_items()
    model.eval()
    objective = build_objective(name, kwargs, model)
    for k in (0, 1, 3):  # the labelled samples
        alone = objective(collate([items[k]], packed=True), model(collate([items[k]], packed=True)))
        only_k = [type(it)(**{**it.__dict__, "meta": it.meta if i == k else {}}) for i, it in enumerate(items)]
        for packed in (True, False):
            batch = collate(only_k, packed=packed)
            torch.testing.assert_close(objective(batch, model(batch)), alone, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_contract_nothing_to_learn_gives_zero_that_reaches_every_weight(name, kwargs):
    model, items = model_and_items()
    objective = build_objective(name, kwargs, model)
    batch = collate([items[2]], packed=True)  # a caption: no ground truth about distortions
    loss = objective(batch, model.train()(batch))
    assert loss.item() == 0.0
    loss.backward()
    assert all(p.grad is not None for p in objective.parameters())


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_contract_saved_as_training_state_not_in_the_inference_checkpoint(name, kwargs, tmp_path):
    from safetensors.torch import load_file

    from depictqa.checkpoint import (CheckpointError, gather_module, load_objectives, load_pretrained,
                                     save_objectives, save_pretrained)

    block = {"name": name, "weight": 0.5, **kwargs}
    recipe = tiny_recipe(f"objectives=[{_yaml(block)}]")
    model, items = model_and_items()
    from depictqa.task import DepictQATask

    task = DepictQATask(model, recipe)
    torch.nn.init.normal_(task.objectives[0].proj.weight)
    save_pretrained(model, recipe, tmp_path / "ckpt")
    save_objectives(tmp_path / "ckpt", gather_module(task.objectives))
    assert not any(k.startswith("objectives") for k in load_file(str(tmp_path / "ckpt/trainable.safetensors")))
    load_pretrained(tmp_path / "ckpt")  # the inference model needs no objective
    fresh = DepictQATask(model_and_items()[0], recipe)
    load_objectives(fresh.objectives, tmp_path / "ckpt")
    batch = collate(items, packed=True)
    out = model.eval()(batch)
    torch.testing.assert_close(fresh.objectives[0](batch, out), task.objectives[0](batch, out))
    other = DepictQATask(model_and_items()[0], tiny_recipe(f"objectives=[{_yaml({**block, 'categories': ['blur']})}]"))
    with pytest.raises(CheckpointError, match="does not fit the recipe's objectives"):
        load_objectives(other.objectives, tmp_path / "ckpt")


def _yaml(block: dict) -> str:
    return "{" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in block.items()) + "}"


def test_targets_follow_the_prompt_order_and_skip_unknown_images():
    model, items = model_and_items()
    items[0].meta["distortions_B"] = [{"category": "noise", "severity": 5}, {"category": "darken", "severity": 1}]
    items[1].meta = {"distortions": [], "quality": 100.0}   # a clean image: no category present
    items[3].meta = {"distortions_A": [{"category": "not-a-category", "severity": 3}], "distortions_B": []}
    objective = build_objective("distortion", {}, model)
    assert objective.targets(collate(items, packed=True)) == [
        ({}, 100.0), ({"blur": 4}, 45.0), ({"noise": 5, "darken": 1}, 100.0),  # the reference comes first
        ({}, 100.0),                                  # the clean NR image
        None,                                         # a caption says nothing about distortions
        None, ({}, None)]                             # an unknown category: that image is left out


def test_preference_is_asked_of_image_b_of_a_comparison_only():
    model, items = model_and_items()
    batch = collate(items, packed=True)
    assert DistortionObjective.preferences(batch) == [None, None, 0.0, None, None, None, 1.0]
    items[3].meta["quality_B"] = 100.0                              # a tie says nothing
    assert DistortionObjective.preferences(collate(items, packed=True))[-1] is None


def test_image_end_states_are_the_last_position_of_each_image():
    from depictqa.objectives import image_end_states

    model, items = model_and_items()
    for packed in (True, False):
        batch = collate(items, packed=packed, pad_id=model.tokenizer.pad_token_id)
        rows, length = batch.image_mask.shape
        hidden = torch.arange(rows * length, dtype=torch.float).view(rows, length, 1)
        tokens = [model.image_tokens(*p.shape[-2:]) for p in batch.pixels]
        got = image_end_states(hidden, batch.image_mask, tokens)[:, 0].long().tolist()
        flat = [r * length + c for r in range(rows) for c in range(length) if batch.image_mask[r, c]]
        ends = torch.tensor(tokens).cumsum(0) - 1
        assert got == [flat[e] for e in ends.tolist()] and len(got) == len(batch.pixels) == 7


def test_lm_state_of_image_a_has_seen_the_reference_but_not_image_b():
    model, items = model_and_items()
    model.eval()
    objective = build_objective("distortion", {"source": "lm"}, model)

    def states_with(which: int, value: int) -> torch.Tensor:
        item = model_and_items()[1][0]  # prompt order: reference, A, B
        item.pixels[which] = torch.full_like(item.pixels[which], value)
        batch = collate([item], packed=True)
        return objective.features(batch, model(batch))

    base = states_with(2, 0)
    torch.testing.assert_close(base[1], states_with(2, 255)[1])     # B changed: A's state is the same
    assert not torch.allclose(base[1], states_with(0, 255)[1])       # the reference changed: A's state too


def test_the_task_adds_each_weighted_objective_and_logs_it(monkeypatch):
    from depictqa.task import DepictQATask

    recipe = tiny_recipe("objectives=[{name: distortion, weight: 0.5}, {name: distortion, weight: 2.0, source: lm}]")
    model, items = model_and_items()
    task = DepictQATask(model, recipe)
    assert task.objective_names == ["distortion", "distortion_2"] and task.objective_weights == [0.5, 2.0]
    logged = {}
    monkeypatch.setattr(task, "log", lambda name, value, **kw: logged.__setitem__(name, float(value)))
    batch = collate(items, packed=True)
    total = task.training_step(batch, 0)
    assert total.item() == pytest.approx(logged["train/loss"] + 0.5 * logged["train/distortion_loss"]
                                         + 2.0 * logged["train/distortion_2_loss"], rel=1e-5)
    optimised = {id(p) for g in task.configure_optimizers()["optimizer"].param_groups for p in g["params"]}
    assert all(id(p) in optimised for p in task.objectives.parameters())


def test_old_recipe_keys_become_objectives_and_conditioners_with_a_warning():
    with pytest.warns(FutureWarning, match="model.lm_distortion_head is deprecated"):
        recipe = tiny_recipe("model.distortion_head=1.0", "model.lm_distortion_head=0.3", "model.relative_stats=true")
    assert [dict(o) for o in recipe.objectives] == [
        {"name": "distortion", "weight": 1.0, "source": "projected"},
        {"name": "distortion", "weight": 0.3, "source": "lm", "preference": True}]
    assert [dict(c) for c in recipe.model.conditioners] == [{"name": "relative-stats"}]
    assert "distortion_head" not in recipe.model and "relative_stats" not in recipe.model


def test_bad_objective_blocks_fail_before_building():
    from depictqa.config import RecipeError

    with pytest.raises(RecipeError, match=r"objectives\[0\].*has no argument 'sauce'; valid: categories, preference, source"):
        tiny_recipe("objectives=[{name: distortion, sauce: lm}]")
    with pytest.raises(RecipeError, match=r"objectives\[0\].weight must be > 0"):
        tiny_recipe("objectives=[{name: distortion, weight: 0}]")
    with pytest.raises(ValueError, match="source 'ln' is not one of projected, lm"):
        objectives.build("distortion", width=8, source="ln")
