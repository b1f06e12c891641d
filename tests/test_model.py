import pytest
import torch
import torch.nn.functional as F

from depictqa.data.collate import collate
from depictqa.prompts import IGNORE
from tests.conftest import TEXTS, fit_steps, make_item, mixed_items, tiny_recipe


def test_mixed_batch_equals_each_sample_alone(model):
    items = mixed_items(model)
    batched = model(collate(items, pad_id=model.tokenizer.pad_token_id)).sample_loss
    alone = torch.stack([model(collate([it])).sample_loss[0] for it in items])
    assert batched.shape == (4,)
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)


def test_packed_batch_equals_padded(model):
    items = mixed_items(model)
    padded = collate(items, pad_id=model.tokenizer.pad_token_id)
    packed = collate(items, packed=True)
    assert packed.input_ids.shape[0] == 1 and packed.attention_mask is None
    assert packed.padding_fraction == 0.0 and padded.padding_fraction > 0.1
    torch.testing.assert_close(model(packed).sample_loss, model(padded).sample_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(packed).loss, model(padded).loss, rtol=1e-5, atol=1e-5)


def test_answer_only_logits_equal_full_logits_loss(model):
    batch = collate(mixed_items(model), pad_id=model.tokenizer.pad_token_id)
    embeds = model.embed(batch)
    full = model.llm.forward(embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids).logits
    reference = F.cross_entropy(full[:, :-1].reshape(-1, full.shape[-1]), batch.labels[:, 1:].reshape(-1),
                                ignore_index=IGNORE)
    torch.testing.assert_close(model(batch).loss, reference, rtol=1e-5, atol=1e-5)


def test_loss_counts_only_answer_tokens(model):
    batch = collate(mixed_items(model))
    out = model(batch)
    assert int(out.tokens) == int((batch.labels != IGNORE).sum())
    assert torch.isfinite(out.loss) and out.loss > 0


def test_image_content_changes_the_loss(model):
    a = make_item(model, "assess", False, "What distortion?", "Noise", [(16, 16)], seed=1)
    b = make_item(model, "assess", False, "What distortion?", "Noise", [(16, 16)], seed=2)
    assert not torch.allclose(model(collate([a])).loss, model(collate([b])).loss)


def test_save_load_gives_identical_logits(tmp_path, model, recipe):
    import depictqa

    batch = collate(mixed_items(model))
    before = model(batch).sample_loss
    depictqa.save_pretrained(model, recipe, tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {"recipe.yaml", "trainable.safetensors", "tokenizer"}
    loaded = depictqa.load_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(batch).sample_loss, before)


def test_checkpoint_keeps_batchnorm_statistics_of_a_trained_stem(tmp_path):
    import depictqa
    from depictqa.build import build_model

    recipe = tiny_recipe("model.encoder={name: tiny-vit, train: full, patch_size: 8, embed_dim: 32, depth: 1, "
                         "num_heads: 2, grid: 4, stem: conv, mscn: true, stem_bn: true}")
    torch.manual_seed(0)
    model = build_model(recipe, texts=TEXTS)
    batch = collate(mixed_items(model))
    model.train()
    with torch.no_grad():
        model(batch)  # updates the running statistics
    model.eval()
    before = model(batch).sample_loss
    stats = {n for n in model.trainable_state_dict() if n.endswith(("running_mean", "running_var"))}
    assert stats  # BatchNorm buffers travel with the trained encoder
    depictqa.save_pretrained(model, recipe, tmp_path / "ckpt")
    loaded = depictqa.load_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(batch).sample_loss, before)


def test_lora_checkpoint_is_a_peft_adapter_plus_projector(tmp_path):
    import depictqa
    from depictqa.build import build_model

    recipe = tiny_recipe("model.llm.train=lora", "model.llm.lora={r: 4, alpha: 8, dropout: 0.0}",
                         "model.encoder.train=frozen")
    torch.manual_seed(0)
    model = build_model(recipe, texts=TEXTS)
    with torch.no_grad():  # make the adapter non-trivial so a lost adapter would show
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.eval()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("projector.") or "lora_" in n for n in trainable)
    batch = collate(mixed_items(model))
    before = model(batch).sample_loss
    depictqa.save_pretrained(model, recipe, tmp_path / "ckpt")
    assert (tmp_path / "ckpt/adapter/adapter_config.json").is_file()
    assert (tmp_path / "ckpt/adapter/adapter_model.safetensors").is_file()
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "ckpt/trainable.safetensors"))
    assert not any("lora_" in k for k in saved)  # the adapter lives in adapter/ only
    assert any(k.startswith("projector.") for k in saved)
    loaded = depictqa.load_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(batch).sample_loss, before)


def test_not_a_checkpoint_is_refused(tmp_path):
    import pytest

    import depictqa
    from depictqa.checkpoint import CheckpointError

    (tmp_path / "model.pt").write_bytes(b"\x80\x04not a pickle we would ever load")
    with pytest.raises(CheckpointError, match="not a depictqa checkpoint"):
        depictqa.load_pretrained(tmp_path)


def test_uint8_pixels_are_normalised_by_the_model_like_float_pixels(model):
    from PIL import Image

    from depictqa.data.images import ImageConfig, prepare_images
    from tests.conftest import random_image

    image = Image.fromarray(random_image(0, 40, 52))
    geometry = dict(short_side=32, max_long_side=48, min_size=16, mean=model.encoder.mean, std=model.encoder.std)
    as_float = prepare_images({"a": image}, ImageConfig(**geometry), model.patch_size)["a"]
    as_uint8 = prepare_images({"a": image}, ImageConfig(**geometry, uint8=True), model.patch_size)["a"]
    assert as_uint8.dtype == torch.uint8 and as_uint8.shape == as_float.shape
    torch.testing.assert_close(model.normalise(as_uint8), as_float)
    torch.testing.assert_close(model.encode_images([as_uint8])[0], model.encode_images([as_float])[0])


def test_collated_images_of_one_shape_share_one_storage(model):
    # Fewer shared-memory segments per batch leaving a DataLoader worker; values unchanged.
    items = mixed_items(model)
    batch = collate(items)
    originals = [p for item in items for p in item.pixels]
    assert len(batch.pixels) == len(originals)
    for got, want in zip(batch.pixels, originals):
        assert torch.equal(got, want)
    by_shape = {}
    for p in batch.pixels:
        by_shape.setdefault(tuple(p.shape), set()).add(p.untyped_storage().data_ptr())
    assert len(by_shape) > 1 and all(len(ptrs) == 1 for ptrs in by_shape.values())


def test_loss_reductions_weigh_a_token_by_its_answer_length():
    """token: every answer token alike; sample: every sample alike; sqrt: a sample's tokens at
    1 / sqrt(its length) each. All three agree when the answers are equally long."""
    from depictqa.model import Output
    from depictqa.task import reduce_loss

    def out(per_token: list[list[float]]) -> Output:
        flat = torch.tensor([x for s in per_token for x in s])
        n = torch.tensor([float(len(s)) for s in per_token])
        mean = torch.tensor([sum(s) / len(s) for s in per_token])
        return Output(flat.mean(), mean, n, torch.tensor(0), torch.tensor(len(flat)), [], torch.zeros(0))

    short, long_ = [4.0], [1.0] * 16          # a one-token label at loss 4, a 16-token answer at 1
    o = out([short, long_])
    assert reduce_loss(o, "token").item() == pytest.approx(20 / 17)
    assert reduce_loss(o, "sample").item() == pytest.approx(2.5)
    assert reduce_loss(o, "sqrt").item() == pytest.approx((4 * 1 + 1 * 4) / (1 + 4))
    even = out([[1.0, 3.0], [2.0, 2.0]])
    assert {round(reduce_loss(even, how).item(), 6) for how in ("token", "sample", "sqrt")} == {2.0}
