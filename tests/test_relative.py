"""Sample-relative statistics (``model.relative_stats``): which images they compare, what they add
to the tokens, and that they train, save and answer like the rest of the model."""

import pytest
import torch

from depictqa.data.collate import collate
from depictqa.encoders.tiny import GlobalStats
from depictqa.relative import RelativeStats, batch_layout, image_roles
from tests.conftest import TEXTS, fit_steps, mixed_items, random_image, tiny_recipe

S = GlobalStats.size


def build(*extra: str):
    from depictqa.build import build_model

    torch.manual_seed(0)
    return build_model(tiny_recipe(*extra), texts=TEXTS)


def relative_model():
    return build("model.relative_stats=true")


def test_roles_follow_the_prompt_order():
    layout = [("compare", 3), ("assess", 1), ("caption", 1), ("compare", 2), ("assess", 2)]
    assert image_roles(layout) == [(None, None), (0, 2), (0, 1),   # FR compare: reference, A, B
                                   (None, None),                   # NR assess: nothing to compare
                                   (None, None),                   # caption
                                   (None, 6), (None, 5),           # NR compare: A <-> B
                                   (None, None), (7, None)]        # FR assess: reference, A


@pytest.mark.parametrize("layout", [[("compare", 4)], [("assess", 3)], [("compare", 1)]])
def test_an_image_count_the_task_cannot_have_is_refused(layout):
    with pytest.raises(ValueError, match=f"a '{layout[0][0]}' sample has {layout[0][1]} image"):
        image_roles(layout)


def test_a_batch_without_image_counts_is_refused():
    with pytest.raises(ValueError, match="relative_stats needs each sample's task and image count"):
        batch_layout(["compare", "assess"], [])


def test_vectors_are_differences_to_the_reference_and_to_the_other_image():
    ref, a, b = (torch.from_numpy(random_image(s, 32, 40)).permute(2, 0, 1).float() / 255 for s in (1, 2, 3))
    rel = RelativeStats(16).eval()
    stats = rel.stats(torch.stack([ref, a, b]))
    v = rel.vectors([ref, a, b, a, b], [("compare", 3), ("compare", 2)])
    torch.testing.assert_close(v[0], torch.zeros(2 * S + 2))                        # the reference
    torch.testing.assert_close(v[1, :S], stats[1] - stats[0])                       # A - reference
    torch.testing.assert_close(v[1, S:2 * S], stats[1] - stats[2])                  # A - B
    torch.testing.assert_close(v[2, S:2 * S], -v[1, S:2 * S])                       # B - A
    assert v[1, -2:].tolist() == [1.0, 1.0] and v[3, -2:].tolist() == [0.0, 1.0]
    torch.testing.assert_close(v[3, :S], torch.zeros(S))                            # no reference
    torch.testing.assert_close(v[3:], v[1:3] * torch.cat([torch.zeros(S), torch.ones(S), torch.tensor([0.0, 1.0])]))
    # asked the other way round, each image gets the same vector as before
    swapped = rel.vectors([ref, b, a], [("compare", 3)])
    torch.testing.assert_close(swapped[1], v[2])
    torch.testing.assert_close(swapped[2], v[1])


def test_it_starts_as_a_no_op_and_then_ties_each_image_to_its_own_sample_only():
    plain, model = build().eval(), relative_model().eval()
    items = mixed_items(model)
    batch = collate(items, packed=True)
    layout = model.layout(batch)
    # built last and zero-initialised: the same tokens as the model without it
    for x, y in zip(plain.encode_images(batch.pixels), model.encode_images(batch.pixels, layout=layout)):
        torch.testing.assert_close(x, y)
    torch.nn.init.normal_(model.relative_stats.embed[-1].weight, std=0.5)  # as after training
    before = model.encode_images(batch.pixels, layout=layout)
    changed = list(batch.pixels)
    changed[2] = torch.flip(changed[2], dims=[-1]) * 0.5  # image B of the first (FR compare) sample
    after = model.encode_images(changed, layout=layout)
    assert not torch.allclose(before[1], after[1])                  # image A sees B through A - B
    assert not torch.allclose(before[2], after[2])
    torch.testing.assert_close(before[0], after[0])                 # the reference: nothing relative
    for i in range(3, len(before)):                                 # other samples: untouched
        torch.testing.assert_close(before[i], after[i])
    plain_before = plain.encode_images(batch.pixels)
    plain_after = plain.encode_images(changed)
    torch.testing.assert_close(plain_before[1], plain_after[1])     # without it, A never sees B


def test_encoding_without_the_layout_is_refused():
    model = relative_model().eval()
    batch = collate(mixed_items(model), packed=True)
    with pytest.raises(ValueError, match="needs the batch layout"):
        model.encode_images(batch.pixels)


def test_it_trains_with_the_lm_loss_and_is_saved(tmp_path):
    from depictqa.checkpoint import load_pretrained, save_pretrained

    model = relative_model().train()
    batch = collate(mixed_items(model), packed=True)
    embed = model.relative_stats.embed
    first, last = fit_steps(model, batch, lambda out: out.loss)
    assert last < first and embed[-1].weight.abs().sum() > 0      # left its zero start
    assert embed[0].num_batches_tracked > 0                        # BatchNorm statistics were updated
    save_pretrained(model, tiny_recipe("model.relative_stats=true"), tmp_path / "ckpt")
    again = load_pretrained(tmp_path / "ckpt").eval()
    model.eval()
    torch.testing.assert_close(again.relative_stats.embed[0].running_mean, embed[0].running_mean)
    torch.testing.assert_close(again(batch).loss, model(batch).loss)


def test_assessor_answers_batched_as_one_at_a_time_and_in_both_orders():
    from depictqa.infer.assessor import Assessor, image_config

    model = relative_model().eval()
    torch.nn.init.normal_(model.relative_stats.embed[-1].weight, std=0.5)
    assessor = Assessor(model, image_config(model, tiny_recipe("model.relative_stats=true")), batch_size=4)
    images = [random_image(20 + i, 32, 40) for i in range(4)]
    a, b, ref = images[:2], images[2:], random_image(30, 32, 40)
    batch = assessor.prefer(a, b, reference=ref, both_orders=True)
    for x, y, got in zip(a, b, batch):
        one = assessor.prefer(x, y, reference=ref)
        assert got.error is None and abs(got.p_a - one.p_a) < 1e-5
        assert abs(got.p_b_when_first - assessor.prefer(y, x, reference=ref).p_a) < 1e-5


def test_the_statistics_stay_float32_under_bf16_autocast():
    rel = RelativeStats(16).eval()
    pixels = [torch.from_numpy(random_image(s, 32, 40)).permute(2, 0, 1).float() / 255 for s in (4, 5)]
    want = rel.vectors(pixels, [("compare", 2)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = rel.vectors(pixels, [("compare", 2)])
        assert rel(pixels, [("compare", 2)]).shape == (2, 16)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)
