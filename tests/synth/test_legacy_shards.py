"""Shards written by depictqa before the official labels (0.2) still load and mean the same."""

from __future__ import annotations

import numpy as np

from depictqa.data.schema import Sample
from depictqa.data.shards import iter_shard_samples, write_shards
from depictqa.labels import DISTORTIONS, LEGACY_LABELS
from depictqa.synth import quality as Q


def test_an_old_label_shard_loads_and_scores_as_its_category(tmp_path):
    image = np.zeros((32, 32, 3), np.uint8)
    old = [Sample(key=f"old-{i}", task="assess", reference=False, style="single",
                  meta={"distortions": [{"category": key, "subtype": "x", "severity": 2}], "label": text},
                  images={"a": image}, conversations=[{"from": "human", "value": "What is wrong?"},
                                                     {"from": "gpt", "value": text}])
           for i, (text, key) in enumerate(LEGACY_LABELS.items())]
    old.append(Sample(key="old-two", task="assess", reference=False, style="single", meta={}, images={"a": image},
                      conversations=[{"from": "human", "value": "What is wrong?"},
                                     {"from": "gpt", "value": "Contrast strengthen and noise"}]))
    loaded = list(iter_shard_samples(write_shards(old, tmp_path, prefix="old")))
    assert [s.key for s in loaded] == [s.key for s in old]
    for sample, (text, key) in zip(loaded, LEGACY_LABELS.items()):
        answer = sample.conversations[-1]["value"]
        assert answer == text and Q.parse_label(answer) == [key]
        assert Q.label(sample.meta["distortions"]) == DISTORTIONS[key][0]  # re-labelled the official way
    assert Q.parse_label(loaded[-1].conversations[-1]["value"]) == ["contrast_strengthen", "noise"]
    # every category whose label changed has an old spelling
    assert {k for k in DISTORTIONS if DISTORTIONS[k][0].lower() != k.replace("_", " ")} <= set(LEGACY_LABELS.values())
