"""The LM-side distortion head (``model.lm_distortion_head``): where it reads, what it predicts, what it trains."""

import torch

from depictqa.auxiliary import DistortionHead, image_end_states
from depictqa.data.collate import collate
from tests.conftest import TEXTS, fit_steps, mixed_items, tiny_recipe

META = [{"distortions_A": [{"category": "blur", "severity": 4}], "distortions_B": [], "quality_A": 45.0,
         "quality_B": 100.0},
        {"distortions": [{"category": "noise", "severity": 3}], "quality": 60.0}, {},
        {"distortions_A": [], "distortions_B": [{"category": "pixelate", "severity": 5}], "quality_A": 100.0,
         "quality_B": 30.0}]


def labelled_items(model):
    items = mixed_items(model)  # compare FR (3 images), assess NR (1), caption (1), compare NR (2)
    for item, meta in zip(items, META):
        item.meta = dict(meta)
    return items


def lm_model(*extra: str):
    from depictqa.build import build_model

    torch.manual_seed(0)
    return build_model(tiny_recipe("model.lm_distortion_head=1.0", *extra), texts=TEXTS).train()


def test_image_end_states_are_the_last_position_of_each_image():
    model = lm_model()
    items = labelled_items(model)
    for packed in (True, False):
        batch = collate(items, packed=packed, pad_id=model.tokenizer.pad_token_id)
        rows, length = batch.image_mask.shape
        hidden = torch.arange(rows * length, dtype=torch.float).view(rows, length, 1)
        tokens = [model.image_tokens(*p.shape[-2:]) for p in batch.pixels]
        got = image_end_states(hidden, batch.image_mask, tokens)[:, 0].long().tolist()
        want = []  # walk the mask image by image: each image is a run of `tokens[i]` positions
        flat = [r * length + c for r in range(rows) for c in range(length) if batch.image_mask[r, c]]
        start = 0
        for n in tokens:
            want.append(flat[start + n - 1])
            start += n
        assert got == want and len(got) == len(batch.pixels) == 7


def test_preference_is_asked_of_the_last_image_of_a_comparison_only():
    model = lm_model()
    batch = collate(labelled_items(model), packed=True)
    assert DistortionHead.preferences(batch) == [None, None, 0.0,   # FR compare: ref, A, B (B is better)
                                                 None,              # assess
                                                 None,              # caption
                                                 None, 1.0]         # NR compare: A is better
    items = labelled_items(model)
    items[3].meta["quality_B"] = 100.0                              # a tie says nothing
    assert DistortionHead.preferences(collate(items, packed=True))[-1] is None


def test_state_of_image_a_has_seen_the_reference_but_not_image_b():
    """Causal: the FR comparison's image-A state depends on the reference before it, not on B after it."""
    model = lm_model()
    seen = {}
    model.lm_distortion_head.register_forward_hook(lambda mod, args, out: seen.update(states=args[1].detach()))

    def states_with(which: int, value: int) -> torch.Tensor:
        item = labelled_items(model)[0]  # prompt order: reference, A, B
        item.pixels[which] = torch.full_like(item.pixels[which], value)
        model(collate([item], packed=True))
        return seen["states"]

    base = states_with(2, 0)
    assert torch.equal(base[1], states_with(2, 255)[1])              # B changed: A's state is the same
    assert not torch.allclose(base[1], states_with(0, 255)[1])       # the reference changed: A's state too


def test_lm_head_trains_the_lm_and_is_saved(tmp_path):
    from depictqa.checkpoint import load_pretrained, save_pretrained

    model = lm_model()
    batch = collate(labelled_items(model), packed=True)
    out = model(batch)
    assert out.aux_loss is None and out.lm_aux_loss is not None and out.lm_aux_loss > 0
    out.lm_aux_loss.backward()
    decoder = [p for n, p in model.llm.named_parameters() if "layers." in n]
    assert decoder and all(p.grad is not None for p in decoder)
    assert any(p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    first, last = fit_steps(model, batch, lambda out: out.lm_aux_loss)
    assert last < 0.5 * first
    save_pretrained(model, tiny_recipe("model.lm_distortion_head=1.0"), tmp_path / "ckpt")
    again = load_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(again.lm_distortion_head.proj.weight, model.lm_distortion_head.proj.weight)
    assert model.eval()(batch).lm_aux_loss is None                   # never used to answer

