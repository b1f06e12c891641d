"""The `official-abstractor` projector is the released DepictQA-Wild abstractor exactly: its
parameters carry the released checkpoint's names one to one, and its output equals the release's
computation written out here by hand (post-norm decoder layers, ReLU, 8 heads, sequence-first)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import depictqa

WIDTH, LLM, QUERIES, LAYERS, HEADS = 16, 24, 64, 4, 8


def released_names(layers: int = LAYERS) -> set[str]:
    """The tensor names the abstractor release's ckpt.pt holds (besides the LoRA)."""
    names = {"abstractor.query_embeds", "vision_proj.weight", "vision_proj.bias"}
    for i in range(layers):
        stem = f"abstractor.abstractor.layers.{i}"
        for attn in ("self_attn", "multihead_attn"):
            names |= {f"{stem}.{attn}.{p}" for p in ("in_proj_weight", "in_proj_bias", "out_proj.weight",
                                                      "out_proj.bias")}
        names |= {f"{stem}.{part}.{p}" for part in ("linear1", "linear2", "norm1", "norm2", "norm3")
                  for p in ("weight", "bias")}
    return names


def reference(state: dict[str, torch.Tensor], tokens: torch.Tensor, heads: int) -> torch.Tensor:
    """The release's forward from its tensors: queries [Q, B, W] through each post-norm layer
    (self-attention, cross-attention to the image tokens, ReLU feed-forward), then vision_proj."""
    memory = tokens.transpose(0, 1)  # [N, B, W], sequence-first as the release
    x = state["abstractor.query_embeds"].expand(-1, tokens.shape[0], -1)
    width = x.shape[-1]

    def attend(prefix: str, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return F.multi_head_attention_forward(
            q, kv, kv, width, heads, state[f"{prefix}.in_proj_weight"], state[f"{prefix}.in_proj_bias"], None, None,
            False, 0.0, state[f"{prefix}.out_proj.weight"], state[f"{prefix}.out_proj.bias"], training=False,
            need_weights=False)[0]

    def norm(prefix: str, y: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(y, (width,), state[f"{prefix}.weight"], state[f"{prefix}.bias"])

    i = 0
    while f"abstractor.abstractor.layers.{i}.norm1.weight" in state:
        s = f"abstractor.abstractor.layers.{i}"
        x = norm(f"{s}.norm1", x + attend(f"{s}.self_attn", x, x))
        x = norm(f"{s}.norm2", x + attend(f"{s}.multihead_attn", x, memory))
        hidden = F.relu(F.linear(x, state[f"{s}.linear1.weight"], state[f"{s}.linear1.bias"]))
        x = norm(f"{s}.norm3", x + F.linear(hidden, state[f"{s}.linear2.weight"], state[f"{s}.linear2.bias"]))
        i += 1
    return F.linear(x.transpose(0, 1), state["vision_proj.weight"], state["vision_proj.bias"])


@pytest.fixture(scope="module")
def projector():
    torch.manual_seed(0)
    return depictqa.projectors.build("official-abstractor", in_dim=WIDTH, out_dim=LLM).eval()


def test_parameter_names_are_the_released_names_one_to_one(projector):
    assert set(projector.state_dict()) == released_names()
    assert projector.abstractor.query_embeds.shape == (QUERIES, 1, WIDTH)  # width from the encoder
    assert projector.vision_proj.weight.shape == (LLM, WIDTH)
    assert projector.abstractor.abstractor.layers[0].linear1.out_features == 2048


def test_output_equals_the_release_computation_written_by_hand(projector):
    tokens = torch.randn(3, 37, WIDTH)
    state = {k: v.detach() for k, v in projector.state_dict().items()}
    with torch.no_grad():
        ours = projector(tokens)
    assert ours.shape == (3, QUERIES, LLM) and projector.num_tokens(37) == QUERIES
    assert (ours - reference(state, tokens, HEADS)).abs().max() < 1e-5
    # the head count matters, so the comparison can fail: another split of the width differs
    assert (ours - reference(state, tokens, 4)).abs().max() > 1e-3
    # each image is read on its own: a batch equals its items one by one
    with torch.no_grad():
        alone = torch.cat([projector(tokens[i:i + 1]) for i in range(3)])
    assert (ours - alone).abs().max() < 1e-5


def test_training_mode_applies_the_release_dropout(projector):
    tokens = torch.randn(1, 9, WIDTH)
    projector.train()
    try:
        a, b = projector(tokens), projector(tokens)
    finally:
        projector.eval()
    assert not torch.allclose(a, b)  # dropout 0.1 while training, as the release was trained
