"""depictqa_varlen: packed attention from position ids equals per-sample attention (CPU fallback;
the CUDA varlen kernel is checked in tests/gpu)."""

import pytest
import torch
import torch.nn.functional as F

import depictqa.attention as attention
from depictqa.data.collate import collate
from tests.conftest import TEXTS, mixed_items, tiny_recipe


def _segments(lengths, heads=4, kv_heads=4, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    q = torch.randn(total, heads, dim, generator=g)
    k, v = (torch.randn(total, kv_heads, dim, generator=g) for _ in range(2))
    return q, k, v


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_fallback_equals_each_sequence_alone(kv_heads):
    # equal lengths apart from each other (5, 5 and 1, 1): the fallback batches them together
    lengths = [5, 1, 9, 5, 3, 1]
    q, k, v = (t.requires_grad_() for t in _segments(lengths, kv_heads=kv_heads))
    position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
    cu, longest = attention.cu_seqlens_from_position_ids(position_ids)
    assert cu.tolist() == [0, 5, 6, 15, 20, 23, 24] and longest == 9
    packed = attention.packed_attention(q, k, v, cu, longest)
    weights = torch.randn_like(packed)
    grads = torch.autograd.grad((packed * weights).sum(), (q, k, v))
    start, alone = 0, []
    for n in lengths:
        s = slice(start, start + n)
        kk, vv = (t[s].repeat_interleave(4 // kv_heads, dim=1) for t in (k, v))
        alone.append(F.scaled_dot_product_attention(q[s].transpose(0, 1), kk.transpose(0, 1), vv.transpose(0, 1),
                                                    is_causal=True).transpose(0, 1))
        start += n
    alone = torch.cat(alone)
    torch.testing.assert_close(packed, alone)
    for got, want in zip(grads, torch.autograd.grad((alone * weights).sum(), (q, k, v))):
        torch.testing.assert_close(got, want)


def test_boundaries_read_from_position_restarts_not_zeros():
    # Two rows; the second row's samples restart at 0; a row start is always a boundary.
    position_ids = torch.tensor([[0, 1, 2, 0, 1], [3, 4, 0, 1, 2]])
    cu, longest = attention.cu_seqlens_from_position_ids(position_ids)
    assert cu.tolist() == [0, 3, 5, 7, 10] and longest == 3


def _pair(seed=0):
    from depictqa.build import build_model

    torch.manual_seed(seed)
    sdpa = build_model(tiny_recipe(), texts=TEXTS).eval()
    varlen = build_model(tiny_recipe(f"model.llm.attn_implementation={attention.NAME}"), texts=TEXTS).eval()
    varlen.load_state_dict(sdpa.state_dict())
    return sdpa, varlen


def test_tiny_llama_packed_loss_equals_sdpa(monkeypatch):
    sdpa, varlen = _pair()
    assert varlen.llm.model.config._attn_implementation == attention.NAME
    calls = []
    real = attention.packed_attention
    monkeypatch.setattr(attention, "packed_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    batch = collate(mixed_items(sdpa), packed=True)
    ref, out = sdpa(batch), varlen(batch)
    assert len(calls) == 2  # one per decoder layer: the packed path really ran
    torch.testing.assert_close(out.sample_loss, ref.sample_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-5, atol=1e-5)
    # ...and the gradients of what trains agree too.
    ref.loss.backward()
    out.loss.backward()
    for (name, a), (_, b) in zip(sdpa.named_parameters(), varlen.named_parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_padded_batch_and_generation_equal_sdpa():
    sdpa, varlen = _pair(1)
    items = mixed_items(sdpa)
    padded = collate(items, pad_id=sdpa.tokenizer.pad_token_id)
    torch.testing.assert_close(varlen(padded).sample_loss, sdpa(padded).sample_loss, rtol=1e-5, atol=1e-5)
    # Left-padded prompts with a KV cache (the generation path) give the same greedy tokens.
    prompts = [sdpa.prompts.encode("assess", False, "What distortion?", None, [sdpa.image_tokens(16, 16)]),
               sdpa.prompts.encode("assess", False, "Which distortion does the image have?", None,
                                   [sdpa.image_tokens(16, 16)])]
    width = max(len(p) for p in prompts)
    ids = torch.full((2, width), sdpa.tokenizer.pad_token_id)
    mask = torch.zeros(2, width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = p.input_ids
        mask[i, width - len(p):] = 1
    embeds = sdpa.llm.embed(ids)
    a = sdpa.llm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=6, do_sample=False)
    b = varlen.llm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(a, b)


def test_a_prepared_4d_mask_is_refused():
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match="2-D padding mask"):
        attention.varlen_attention_forward(None, q, q, q, torch.ones(1, 1, 4, 4, dtype=torch.bool))
