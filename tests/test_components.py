"""Contract tests over every registered encoder, projector and LLM (timm-style whole-registry checks)."""

import pytest
import torch

import depictqa
from tests.conftest import TEXTS

ENCODER_ARGS = {
    "clip": {"config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                        "image_size": 28, "patch_size": 14}},
    "timm": {"model_name": "vit_tiny_patch16_224", "model_kwargs": {"depth": 2}},
    "tiny-vit": {"patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2},
}
PROJECTOR_ARGS = {"linear": {}, "mlp": {"hidden_dim": 24}, "abstractor": {"num_queries": 5, "num_heads": 2, "depth": 1},
                  "official-abstractor": {"num_queries": 5, "num_heads": 2, "num_layers": 1, "feedforward": 32}}


def test_every_registered_component_has_test_arguments():
    assert set(depictqa.encoders.list()) == set(ENCODER_ARGS)
    assert set(depictqa.projectors.list()) == set(PROJECTOR_ARGS)
    assert depictqa.llms.list() == ["hf"]


@pytest.mark.parametrize("name", sorted(ENCODER_ARGS))
def test_encoder_contract(name):
    torch.manual_seed(0)
    enc = depictqa.encoders.build(name, **ENCODER_ARGS[name])
    assert isinstance(enc, depictqa.VisionEncoder)
    p = enc.patch_size
    pixels = torch.randn(2, 3, 2 * p, 3 * p, requires_grad=False)  # non-square, not the config size
    out = enc(pixels)
    assert out.shape == (2, 6, enc.embed_dim)
    assert torch.isfinite(out).all()
    out.float().pow(2).mean().backward()
    trainable = [(n, q) for n, q in enc.named_parameters() if q.requires_grad]
    assert trainable and all(q.grad is not None for _, q in trainable), [n for n, q in trainable if q.grad is None]
    assert enc.wrap_classes()


@pytest.mark.parametrize("name", sorted(PROJECTOR_ARGS))
def test_projector_contract(name):
    proj = depictqa.projectors.build(name, in_dim=16, out_dim=12, **PROJECTOR_ARGS[name])
    for n in (7, 30):
        out = proj(torch.randn(3, n, 16))
        assert out.shape == (3, proj.num_tokens(n), 12) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in proj.parameters())


@pytest.mark.parametrize("mode", ["full", "lora", "frozen"])
def test_llm_contract_and_trainable_parts(mode):
    from depictqa.llms.hf import build_hf

    torch.manual_seed(0)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["q_proj", "v_proj"]} if mode == "lora" else None
    llm = build_hf(config={"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                           "num_attention_heads": 2, "num_key_value_heads": 2},
                   tokenizer={"train": {"vocab_size": 300}}, texts=TEXTS, lora=lora)
    if mode == "frozen":
        llm.requires_grad_(False)
    assert isinstance(llm, depictqa.LanguageModel)
    ids = torch.tensor([[1, 5, 9, 12]])
    emb = llm.embed(ids)
    if emb.requires_grad:
        emb.retain_grad()
    else:
        emb = emb.detach().requires_grad_(True)
    logits = llm.logits(llm.hidden(emb))
    assert logits.shape == (1, 4, len(llm.tokenizer)) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    grads = {n: p.grad is not None for n, p in llm.named_parameters()}
    trainable = {n for n, p in llm.named_parameters() if p.requires_grad}
    if mode == "lora":
        assert trainable and all("lora_" in n for n in trainable)
    if mode == "frozen":
        assert not trainable
    assert all(grads[n] for n in trainable)
    assert not any(grads[n] for n in grads if n not in trainable)
    assert emb.grad is not None  # image tokens receive gradient through a frozen LLM
    assert llm.wrap_classes()


def test_frozen_encoder_gets_no_gradient_but_projector_does(recipe):
    from depictqa.build import build_model
    from tests.conftest import mixed_items
    from depictqa.data.collate import collate

    r = recipe.copy()
    r.model.encoder.train = "frozen"
    model = build_model(r, texts=TEXTS)
    model.train()
    model(collate(mixed_items(model))).loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.projector.parameters())
