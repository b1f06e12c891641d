import pytest

from depictqa.eval import description, match
from depictqa.labels import DISTORTIONS

GT_TEXT = ("The image shows strong noise across the sky and slight blur on the building edges, "
           "which together reduce the clarity and make the fine textures hard to see overall.")


def _pair(text):
    gt = [{"id": "1", "task": "quality_single_A", "style": "detail", "answer": GT_TEXT,
           "image_A": "a.png", "distortions": [{"category": "Noise", "severity": 3},
                                                {"category": "Blur", "severity": 1}]}]
    return match([{"id": "1", "text": text}], gt).pairs


def test_identical_text_scores_perfectly():
    r = description(_pair(GT_TEXT))
    assert r["bleu4"] == pytest.approx(1.0) and r["rougeL_f"] == pytest.approx(1.0)
    assert r["mentions"]["precision"] == 1.0 and r["mentions"]["recall"] == 1.0
    if "embedding_cosine" in r:
        assert r["embedding_cosine"] == pytest.approx(1.0, abs=1e-4)


def test_invented_and_missed_distortions():
    r = description(_pair("The image is heavily pixelated and noisy."), use_embeddings=False)
    assert r["mentions"]["precision"] == 0.5 and r["mentions"]["recall"] == 0.5
    assert r["mentions"]["invented"] == {DISTORTIONS["pixelate"][0]: 1} and r["mentions"]["missed"] == {"Blur": 1}
    assert any("skipped" in n for n in r["notes"])
