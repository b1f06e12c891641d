"""Cache of frozen-encoder features, keyed by image content.

With a frozen encoder and no random crop, an image always gives the same encoder tokens, and
IQA data repeats images a lot (every distorted version of a reference is compared with it, and
epochs repeat everything). ``model.encoder_cache_gb`` turns the cache on: DataLoader workers key
each prepared image by a hash of its uint8 pixels (:func:`image_key`), and
``DepictQAModel.encode_images`` runs the encoder only on images it has not seen, keeping the
tokens in host memory (least recently used dropped past the budget).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch


def image_key(pixels: torch.Tensor) -> str:
    """Content key of a prepared image tensor (dtype, shape and bytes)."""
    digest = hashlib.blake2b(pixels.contiguous().numpy().tobytes(), digest_size=16)
    digest.update(f"{pixels.dtype}{tuple(pixels.shape)}".encode())
    return digest.hexdigest()


class FeatureCache:
    """LRU map ``key -> encoder tokens [N, D]`` within ``max_bytes`` of host memory."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"the feature cache needs a positive budget, got {max_bytes} bytes")
        self.max_bytes, self.bytes = max_bytes, 0
        self.hits = self.misses = 0
        self._store: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: str) -> torch.Tensor | None:
        tokens = self._store.get(key)
        if tokens is None:
            self.misses += 1
            return None
        self._store.move_to_end(key)
        self.hits += 1
        return tokens

    def put(self, key: str, tokens: torch.Tensor) -> None:
        if key in self._store:
            return
        stored = tokens.detach().to("cpu", copy=True)
        size = stored.numel() * stored.element_size()
        if size > self.max_bytes:
            return
        self._store[key] = stored
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._store.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
