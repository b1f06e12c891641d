import torch
import torch.nn.functional as F

from depictqa.data.collate import collate
from depictqa.prompts import IGNORE
from tests.conftest import TEXTS, make_item, mixed_items, tiny_recipe


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
