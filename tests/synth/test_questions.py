"""The question grammar: hundreds of phrasings per kind, and a held-out family that training never
sees (its framings and synonyms), used only to measure unseen-phrasing accuracy."""

from __future__ import annotations

import glob
import re

import numpy as np
import pytest

from depictqa.synth.questions import FRAMINGS, SINGLE_SUFFIX, WORDS, phrasings, question

KINDS = [(task, style, ref) for task, style in FRAMINGS for ref in (False, True)]


@pytest.mark.parametrize("task, style, reference", KINDS)
def test_each_kind_has_at_least_500_phrasings_and_draws_reach_them(task, style, reference):
    train = set(phrasings(task, style, reference))
    assert len(train) >= 500
    rng = np.random.default_rng(0)
    drawn = {question(task, style, reference, rng) for _ in range(400)}
    suffix = SINGLE_SUFFIX if style in ("single", "level") else ""
    assert all(q.endswith(suffix) and q[: len(q) - len(suffix)] in train for q in drawn)
    assert len(drawn) > 200  # draws spread over the grammar, not a few favourites
    if reference:
        assert all("reference" in q or "original" in q for q in drawn)


@pytest.mark.parametrize("task, style, reference", KINDS)
def test_the_heldout_family_shares_no_phrasing_framing_or_synonym_with_training(task, style, reference):
    train, heldout = set(phrasings(task, style, reference)), set(phrasings(task, style, reference, "heldout"))
    assert heldout and not train & heldout
    train_framings, heldout_framings = FRAMINGS[(task, style)]
    assert not set(train_framings) & set(heldout_framings)
    only_heldout = [w.strip() for slot in WORDS.values() for w in slot[1] if w.strip()]
    assert not [w for w in only_heldout if any(w in q for q in train)]


def test_heldout_phrasings_never_reach_training_shards(tmp_path):
    """A synthesised set: every stored question is a training-family phrasing, none a held-out one."""
    from depictqa.data.shards import iter_shard_samples
    from depictqa.synth import build_dataset

    build_dataset(tmp_path / "d", samples=160, size=48, seed=3, mix="demo")
    shards = sorted(glob.glob(str(tmp_path / "d" / "**" / "*.tar"), recursive=True))
    assert shards
    heldout_words = [w.strip() for slot in WORDS.values() for w in slot[1] if w.strip()]
    heldout_framings = [re.escape(f.split("{")[0]) for kind in FRAMINGS.values() for f in kind[1] if f.split("{")[0]]
    seen = 0
    for sample in iter_shard_samples(shards):
        for turn in sample.conversations[0::2]:
            q = turn["value"]
            seen += 1
            assert not any(w in q for w in heldout_words), q
            assert not any(re.search(f, q) for f in heldout_framings), q
    assert seen >= 160


def test_unknown_family_is_an_error():
    with pytest.raises(ValueError, match="family"):
        question("assess", "single", False, np.random.default_rng(0), family="test")
