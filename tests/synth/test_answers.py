"""Answers must agree with their ground truth: labels, phrases, rating winner, FR vs NR wording."""

from __future__ import annotations

import numpy as np

from depictqa.synth import answers as A
from depictqa.synth import quality as Q
from depictqa.synth.distortions import sample_distortions
from depictqa.synth.questions import SINGLE_SUFFIX, question


def _draws(n=200, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield rng, ([] if i % 10 == 0 else sample_distortions(rng, 1 + (i % 3 == 0)))


def test_labels_roundtrip_and_format():
    assert Q.label([]) == "None"
    two = [{"category": "blur", "subtype": "gaussian", "severity": 2},
           {"category": "noise", "subtype": "impulse", "severity": 1}]
    assert Q.label(two) == "Blur and noise"
    # the official answer labels, and the labels of older shards still parse
    assert Q.label([{"category": "contrast_strengthen", "subtype": "linear", "severity": 2}]) == "Overly high contrast"
    assert Q.parse_label("Contrast strengthen and noise") == ["contrast_strengthen", "noise"]
    for _, dist in _draws():
        assert Q.parse_label(Q.label(dist)) == [d["category"] for d in dist]


def test_brief_and_detail_name_exactly_the_true_distortions():
    for rng, dist in _draws():
        truth = [d["category"] for d in dist]
        for ref in (False, True):
            assert Q.parse_phrases(A.assess_brief(dist, ref, rng)) == truth
            detail = A.assess_detail(dist, ref, rng, caption="a red circle")
            assert Q.parse_phrases(detail) == truth
            assert detail.endswith(f"quality of the image is {Q.level(Q.quality(dist))}.")


def test_fr_and_nr_wording_differ():
    rng = np.random.default_rng(1)
    dist = [{"category": "blur", "subtype": "lens", "severity": 3}]
    fr = {A.assess_brief(dist, True, rng) for _ in range(50)}
    nr = {A.assess_brief(dist, False, rng) for _ in range(50)}
    assert fr.isdisjoint(nr) and all("reference" in t for t in fr) and not any("reference" in t for t in nr)
    assert all("reference" in question("assess", "brief", True, rng) for _ in range(20))


def test_rating_answers_follow_quality_model():
    rng = np.random.default_rng(2)
    checked = 0
    for _ in range(300):
        da, db = sample_distortions(rng, 1), sample_distortions(rng, 1)
        better = Q.a_better_b(da, db)
        if better is None:
            assert abs(Q.quality(da) - Q.quality(db)) < Q.MIN_GAP
            continue
        assert better == (Q.quality(da) > Q.quality(db))
        want = "A" if better else "B"
        for ref in (False, True):
            assert A.parse_winner(A.compare_brief(da, db, better, ref, rng)) == want
            assert A.parse_winner(A.compare_detail(da, db, better, ref, rng)) == want
        checked += 1
    assert checked > 200


def test_severity_monotone_quality_and_levels():
    for cat, sub in (("blur", "gaussian"), ("saturate_weaken", "hsv")):
        qs = [Q.quality([{"category": cat, "subtype": sub, "severity": s}]) for s in range(1, 6)]
        assert all(a > b for a, b in zip(qs, qs[1:]))
    assert Q.level(100) == "excellent" and Q.level(10) == "bad"


def test_single_questions_use_official_suffix_and_ngrams_counted():
    rng = np.random.default_rng(3)
    for task in ("assess", "compare"):
        for ref in (False, True):
            assert question(task, "single", ref, rng).endswith(SINGLE_SUFFIX)
    texts = [A.assess_brief(d, bool(i % 2), r) for i, (r, d) in enumerate(_draws(300))]
    counts = A.ngram_counts(texts)
    assert counts[1] > 30 and counts[2] > counts[1]
