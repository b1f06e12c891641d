"""``depictqa_varlen``: a transformers attention function for packed rows.

A packed batch (:mod:`depictqa.data.collate`) is one row of several samples whose position ids
restart at 0 and whose ``attention_mask`` is None. transformers' ``sdpa`` path then builds a dense
block-diagonal mask over the whole row (memory and time quadratic in the *row* length, slower than
padding at 7B scale: 22.9k against 30.4k tokens/s on an H100, torch 2.11, lengths 600-2000). This function instead reads the sample boundaries from
``position_ids`` as cumulative lengths (``cu_seqlens``) and attends within each sample:

- CUDA, bf16/fp16, no dropout: ``torch.nn.attention.varlen.varlen_attn`` (flash-attention kernel
  shipped with torch, causal through ``window_size=(-1, 0)``): no padding, no dense mask.
- otherwise (CPU, fp32, dropout): the same segments through SDPA one sample at a time, which gives
  the numbers per-sample attention gives.
- a padded batch (a 2-D ``attention_mask``, e.g. generation or padded evaluation) or a KV cache:
  SDPA with an explicit boolean mask, as transformers' ``sdpa`` does.

Importing this module registers the name (with transformers' ``AttentionInterface`` and, so that
a padding mask still reaches the function, ``AttentionMaskInterface``); build a model with
``attn_implementation="depictqa_varlen"`` afterwards.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["NAME", "cu_seqlens_from_position_ids", "varlen_attention_forward", "packed_attention"]

NAME = "depictqa_varlen"
_FAST_DTYPES = (torch.bfloat16, torch.float16)
# One-entry cache: every decoder layer receives the same position_ids tensor, so the boundaries
# (and the host sync their maximum length needs) are computed once per forward, not per layer.
_cache: tuple[Any, torch.Tensor, int] | None = None


def cu_seqlens_from_position_ids(position_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """[B, L] position ids -> (cu_seqlens [N+1] int32, longest segment).

    A segment starts at every row start and wherever a position is not the previous one plus one
    (packed samples restart at 0). Rows are laid end to end, as ``varlen_attn`` expects.
    """
    global _cache
    if _cache is not None and _cache[0]() is position_ids:
        return _cache[1], _cache[2]
    b, n = position_ids.shape
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    idx = torch.nonzero(starts.reshape(-1), as_tuple=True)[0]
    end = torch.tensor([b * n], device=idx.device, dtype=idx.dtype)
    cu = torch.cat([idx, end]).to(torch.int32)
    longest = int((cu[1:] - cu[:-1]).max())
    _cache = (weakref.ref(position_ids), cu, longest)
    return cu, longest


def packed_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor,
                     max_len: int, scale: float | None = None, dropout: float = 0.0) -> torch.Tensor:
    """Causal attention within each segment. ``query`` [T, Hq, D], ``key``/``value`` [T, Hkv, D],
    ``cu_seqlens`` [N+1] -> [T, Hq, D]."""
    if query.is_cuda and query.dtype in _FAST_DTYPES and dropout == 0.0:
        from torch.nn.attention.varlen import varlen_attn

        if key.shape[1] != query.shape[1] and not _VARLEN_GQA:
            # torch < 2.12 has no enable_gqa in varlen_attn: share the kv heads explicitly.
            rep = query.shape[1] // key.shape[1]
            key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
        extra = {"enable_gqa": True} if key.shape[1] != query.shape[1] else {}
        return varlen_attn(query, key, value, cu_seqlens, cu_seqlens, max_len, max_len, scale=scale,
                           window_size=(-1, 0), **extra)
    # Exact fallback without a varlen kernel (CPU, fp32): segments of equal length are attended in
    # one batched SDPA call. One permutation gathers them group by group and one more puts the
    # outputs back, so autograd sees a few index_selects and splits instead of one slice per sample
    # (each slice's backward fills a zero tensor the size of the whole row).
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    starts = cu_seqlens[:-1].tolist()
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(starts[i])
    device = query.device
    perm = torch.cat([(torch.tensor(st, device=device)[:, None] + torch.arange(n, device=device)).flatten()
                      for n, st in groups.items()])
    sizes = [n * len(st) for n, st in groups.items()]
    gqa = key.shape[1] != query.shape[1]
    parts = [t.index_select(0, perm).split(sizes) for t in (query, key, value)]
    out = []
    for (n, st), q, k, v in zip(groups.items(), *parts):
        q, k, v = (t.view(len(st), n, *t.shape[1:]).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scale, enable_gqa=gqa)
        out.append(o.transpose(1, 2).reshape(-1, *o.shape[1:2], o.shape[-1]))  # [segments * n, Hq, D]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=device)
    return torch.cat(out).index_select(0, inverse)


def _masked_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                 scale: float | None, dropout: float) -> torch.Tensor:
    """[B, H, Lq, D] x [B, H, Lk, D] with a 2-D key padding mask [B, Lk] (or None) -> [B, H, Lq, D].
    Queries are the last Lq positions (a KV cache holds the earlier ones)."""
    lq, lk = query.shape[2], key.shape[2]
    rows = torch.arange(lq, device=query.device)[:, None] + (lk - lq)
    cols = torch.arange(lk, device=query.device)[None, :]
    allowed = (cols <= rows)[None, None]
    if mask is not None:
        # A query with nothing to attend to (left padding) would give NaN: it also sees itself.
        allowed = (allowed & mask[:, None, None, -lk:].bool()) | (cols == rows)[None, None]
    return F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, dropout_p=dropout, scale=scale,
                                          enable_gqa=key.shape[1] != query.shape[1])


def varlen_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                             position_ids: torch.Tensor | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention-function contract: ``query`` [B, Hq, L, D], ``key``/``value``
    [B, Hkv, Lk, D] -> ([B, L, Hq, D], None)."""
    b, h, lq, d = query.shape
    lk = key.shape[2]
    if attention_mask is not None and attention_mask.ndim == 4:
        raise ValueError(f"{NAME} takes a 2-D padding mask or None, not a prepared 4-D mask")
    if attention_mask is not None or lq != lk or position_ids is None:
        out = _masked_sdpa(query, key, value, attention_mask, scaling, dropout)
        return out.transpose(1, 2).contiguous(), None
    if kwargs.get("cu_seq_lens_q") is not None and kwargs.get("max_length_q") is not None:
        cu, longest = kwargs["cu_seq_lens_q"].to(torch.int32), int(kwargs["max_length_q"])
    else:
        cu, longest = cu_seqlens_from_position_ids(position_ids.expand(b, -1) if position_ids.shape[0] != b
                                                   else position_ids)
    flat = [t.transpose(1, 2).reshape(b * lq, t.shape[1], d) for t in (query, key, value)]
    out = packed_attention(*flat, cu, longest, scale=scaling, dropout=dropout)
    return out.view(b, lq, h, d), None


def _padding_mask(attention_mask: torch.Tensor | None = None, kv_length: int = 0, **kwargs: Any) -> torch.Tensor | None:
    """Mask-interface side: pass a 2-D padding mask through (None when nothing is padded), like
    transformers does for flash attention; the packing boundaries come from position_ids."""
    if attention_mask is None:
        return None
    attention_mask = attention_mask[:, -kv_length:]
    return None if attention_mask.all() else attention_mask


def _varlen_has_gqa() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return False
    return "enable_gqa" in inspect.signature(varlen_attn).parameters


_VARLEN_GQA = _varlen_has_gqa()


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, varlen_attention_forward)
    AttentionMaskInterface.register(NAME, _padding_mask)


register()
