"""Image-token conditioners: every registered one through the same contract, then what the
``relative-stats`` conditioner computes, and checkpoints from before conditioners were plug-ins."""

import pytest
import torch

from depictqa import conditioners
from depictqa.conditioners.relative import RelativeStats
from depictqa.data.collate import collate
from depictqa.iqa_stats import GlobalStats
from depictqa.tasks import ImageLayout, spec
from tests.conftest import TEXTS, fit_steps, mixed_items, random_image, tiny_recipe

S = GlobalStats.size
NAMES = conditioners.list()


def build(*extra: str):
    from depictqa.build import build_model

    torch.manual_seed(0)
    return build_model(tiny_recipe(*extra), texts=TEXTS)


def with_conditioner(name: str):
    return build(f"model.conditioners=[{{name: {name}}}]")


def trained_like(model):
    """Random conditioner weights, as after training (some start as a no-op)."""
    torch.manual_seed(1)
    for p in model.conditioners.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model


def test_the_registry_is_not_empty():
    assert "relative-stats" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_contract_gradients_reach_the_conditioner_and_the_projector(name):
    model = trained_like(with_conditioner(name)).train()
    out = model(collate(mixed_items(model), packed=True))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for part in (model.conditioners, model.projector):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_contract_a_batch_answers_each_sample_as_it_would_alone(name):
    model = trained_like(with_conditioner(name)).eval()
    items = mixed_items(model)
    for packed in (True, False):
        together = model(collate(items, packed=packed)).sample_loss
        alone = torch.cat([model(collate([it], packed=packed)).sample_loss for it in items])
        torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_contract_saved_and_loaded_it_gives_the_same_losses(name, tmp_path):
    from depictqa.checkpoint import load_pretrained, save_pretrained

    model = trained_like(with_conditioner(name)).eval()
    batch = collate(mixed_items(model), packed=True)
    save_pretrained(model, tiny_recipe(f"model.conditioners=[{{name: {name}}}]"), tmp_path / "ckpt")
    again = load_pretrained(tmp_path / "ckpt")
    assert len(again.conditioners) == 1
    torch.testing.assert_close(again(batch).sample_loss, model(batch).sample_loss)


def test_unknown_conditioner_and_bad_arguments_fail_before_building():
    from depictqa.config import RecipeError

    with pytest.raises(RecipeError, match=r"model.conditioners\[0\].*unknown conditioner 'nope'; valid: relative-stats"):
        tiny_recipe("model.conditioners=[{name: nope}]")
    with pytest.raises(RecipeError, match="width.*read from the model"):
        tiny_recipe("model.conditioners=[{name: relative-stats, width: 8}]")


def test_relative_vectors_are_differences_to_the_reference_and_to_the_other_image():
    ref, a, b = (torch.from_numpy(random_image(s, 32, 40)).permute(2, 0, 1).float() / 255 for s in (1, 2, 3))
    rel = RelativeStats(16).eval()
    stats = GlobalStats()(torch.stack([ref, a, b]))
    v = rel.vectors([ref, a, b, a, b], ImageLayout.of([spec("compare", True), spec("compare")]))
    torch.testing.assert_close(v[0], torch.zeros(2 * S + 2))                        # the reference
    torch.testing.assert_close(v[1, :S], stats[1] - stats[0])                       # A - reference
    torch.testing.assert_close(v[1, S:2 * S], stats[1] - stats[2])                  # A - B
    torch.testing.assert_close(v[2, S:2 * S], -v[1, S:2 * S])                       # B - A
    assert v[1, -2:].tolist() == [1.0, 1.0] and v[3, -2:].tolist() == [0.0, 1.0]
    torch.testing.assert_close(v[3:], v[1:3] * torch.cat([torch.zeros(S), torch.ones(S), torch.tensor([0.0, 1.0])]))
    swapped = rel.vectors([ref, b, a], ImageLayout.of([spec("compare", True)]))      # asked the other way round
    torch.testing.assert_close(swapped[1], v[2])
    torch.testing.assert_close(swapped[2], v[1])


def test_relative_stats_start_as_a_no_op_and_tie_each_image_to_its_own_sample():
    plain, model = build().eval(), with_conditioner("relative-stats").eval()
    batch = collate(mixed_items(model), packed=True)
    for x, y in zip(plain.encode_images(batch.pixels), model.encode_images(batch.pixels, layout=batch.layout)):
        torch.testing.assert_close(x, y)                            # zero-initialised: the same tokens
    torch.nn.init.normal_(model.conditioners[0].embed[-1].weight, std=0.5)
    before = model.encode_images(batch.pixels, layout=batch.layout)
    changed = list(batch.pixels)
    changed[2] = torch.flip(changed[2], dims=[-1]) * 0.5            # image B of the FR comparison
    after = model.encode_images(changed, layout=batch.layout)
    assert not torch.allclose(before[1], after[1])                  # image A sees B through A - B
    torch.testing.assert_close(before[0], after[0])                 # the reference: nothing relative
    for i in range(3, len(before)):                                 # other samples: untouched
        torch.testing.assert_close(before[i], after[i])


def test_encoding_without_the_layout_is_refused():
    model = with_conditioner("relative-stats").eval()
    batch = collate(mixed_items(model), packed=True)
    with pytest.raises(ValueError, match="needs the batch's layout"):
        model.encode_images(batch.pixels)


def test_relative_stats_train_and_keep_their_batchnorm_statistics():
    model = with_conditioner("relative-stats").train()
    embed = model.conditioners[0].embed
    first, last = fit_steps(model, collate(mixed_items(model), packed=True), lambda out: out.loss)
    assert last < first and embed[-1].weight.abs().sum() > 0       # left its zero start
    assert embed[0].num_batches_tracked > 0


def test_statistics_are_computed_once_per_image_for_encoder_and_conditioner(monkeypatch):
    from depictqa import iqa_stats

    model = build("model.encoder.stats=true", "model.conditioners=[{name: relative-stats}]").eval()
    batch = collate(mixed_items(model), packed=True)
    iqa_stats._memo.clear()
    computed = []
    original = GlobalStats.forward
    monkeypatch.setattr(GlobalStats, "forward", lambda self, x: computed.append(len(x)) or original(self, x))
    model(batch)
    assert sum(computed) == len(batch.pixels)


def test_the_statistics_stay_float32_under_bf16_autocast():
    rel = RelativeStats(16).eval()
    pixels = [torch.from_numpy(random_image(s, 32, 40)).permute(2, 0, 1).float() / 255 for s in (4, 5)]
    layout = ImageLayout.of([spec("compare")])
    want = rel.vectors(pixels, layout)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = rel.vectors(pixels, layout)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


def test_assessor_answers_batched_as_one_at_a_time_and_in_both_orders():
    from depictqa.infer.assessor import Assessor, image_config

    model = with_conditioner("relative-stats").eval()
    torch.nn.init.normal_(model.conditioners[0].embed[-1].weight, std=0.5)
    assessor = Assessor(model, image_config(model, tiny_recipe()), batch_size=4)
    images = [random_image(20 + i, 32, 40) for i in range(4)]
    a, b, ref = images[:2], images[2:], random_image(30, 32, 40)
    batch = assessor.prefer(a, b, reference=ref, both_orders=True)
    for x, y, got in zip(a, b, batch):
        one = assessor.prefer(x, y, reference=ref)
        assert got.error is None and abs(got.p_a - one.p_a) < 1e-5
        assert abs(got.p_b_when_first - assessor.prefer(y, x, reference=ref).p_a) < 1e-5


def test_a_checkpoint_from_before_the_plug_ins_loads_with_a_warning(tmp_path):
    """Old recipes said model.relative_stats / model.distortion_head, old weights relative_stats.*
    and distortion_head.*: they load as the conditioner, and the training-only head is dropped."""
    from omegaconf import OmegaConf
    from safetensors.torch import load_file, save_file

    from depictqa.checkpoint import load_pretrained, save_pretrained

    model = trained_like(with_conditioner("relative-stats")).eval()
    batch = collate(mixed_items(model), packed=True)
    ckpt = tmp_path / "old"
    save_pretrained(model, tiny_recipe("model.conditioners=[{name: relative-stats}]"), ckpt)
    recipe = OmegaConf.load(ckpt / "recipe.yaml")
    recipe.model.pop("conditioners")
    recipe.model.relative_stats, recipe.model.distortion_head = True, 1.0
    OmegaConf.save(recipe, ckpt / "recipe.yaml")
    weights = load_file(str(ckpt / "trainable.safetensors"))
    old = {k.replace("conditioners.0.", "relative_stats."): v for k, v in weights.items()}
    old["distortion_head.proj.weight"] = torch.zeros(25, 32)
    save_file(old, str(ckpt / "trainable.safetensors"))
    with pytest.warns(FutureWarning, match="model.relative_stats is deprecated"):
        again = load_pretrained(ckpt)
    assert len(again.conditioners) == 1 and not hasattr(again, "distortion_head")
    torch.testing.assert_close(again(batch).sample_loss, model(batch).sample_loss)


def test_token_differences_are_position_wise_and_see_the_same_evidence_in_either_order():
    from depictqa.conditioners.differences import TokenDifferences

    torch.manual_seed(0)
    cond = TokenDifferences(8).eval()
    torch.nn.init.normal_(cond.mlp[-1].weight, std=0.5)
    ref, a, b = (torch.randn(6, 8) for _ in range(3))
    pixels = [torch.zeros(3, 16, 16)] * 3
    asked = cond([ref, a, b], pixels, ImageLayout.of([spec("compare", True)]))
    swapped = cond([ref, b, a], pixels, ImageLayout.of([spec("compare", True)]))
    torch.testing.assert_close(asked[0], ref)                        # a reference gets nothing
    torch.testing.assert_close(swapped[1], asked[2])                 # B's tokens whichever way asked
    torch.testing.assert_close(swapped[2], asked[1])
    flags = torch.ones(6, 1)
    want = a + cond.mlp(torch.cat([a - ref, a - b, flags, flags], dim=-1))
    torch.testing.assert_close(asked[1], want)
    # moving one position of the reference changes that position of A only
    moved = ref.clone()
    moved[2] += 1.0
    again = cond([moved, a, b], pixels, ImageLayout.of([spec("compare", True)]))
    changed = (again[1] - asked[1]).abs().sum(dim=-1) > 1e-6
    assert changed.tolist() == [False, False, True, False, False, False]


def test_token_differences_leave_images_without_a_partner_of_their_size_alone():
    from depictqa.conditioners.differences import TokenDifferences

    torch.manual_seed(0)
    cond = TokenDifferences(8).eval()
    torch.nn.init.normal_(cond.mlp[-1].weight, std=0.5)
    ref, image = torch.randn(4, 8), torch.randn(6, 8)
    got = cond([ref, image], [torch.zeros(3, 16, 32), torch.zeros(3, 24, 32)], ImageLayout.of([spec("assess", True)]))
    torch.testing.assert_close(got[1], image)                       # no partner of its size: as alone
    torch.testing.assert_close(got[0], ref)
    lone = cond([image], [torch.zeros(3, 24, 32)], ImageLayout.of([spec("assess")]))
    torch.testing.assert_close(lone[0], image)


def test_token_differences_start_as_a_no_op():
    plain, model = build().eval(), with_conditioner("token-differences").eval()
    batch = collate(mixed_items(model), packed=True)
    for x, y in zip(plain.encode_images(batch.pixels), model.encode_images(batch.pixels, layout=batch.layout)):
        torch.testing.assert_close(x, y)
