import pytest

from depictqa.eval import exact_label, parse_choice, parse_labels, register_synonym
from depictqa.labels import DISTORTIONS


def L(key: str) -> str:
    """Today's answer label of a category (the vocabulary may change wording; tests should not)."""
    return DISTORTIONS[key][0]


@pytest.mark.parametrize("text, labels", [
    ("Noise", {"Noise"}),
    ("Blur and noise", {"Blur", "Noise"}),
    ("noise, BLUR.", {"Blur", "Noise"}),
    ("None", {"None"}),
    ("Contrast weaken", {L("contrast_weaken")}),
    ("Insufficient contrast", {L("contrast_weaken")}),
    ("overly high brightness and compression artifacts", {L("brighten"), "Compression"}),
    ("insufficient saturation", {L("saturate_weaken")}),
    ("Pixelation and color quantization", {L("pixelate"), L("quantization")}),
    ("The image has no noticeable noise, but it is heavily blurred.", {"Blur"}),
    ("This image is clean and shows no distortion.", {"None"}),
    ("I like turtles", set()),
    ("", set()),
])
def test_parse_labels(text, labels):
    assert parse_labels(text) == labels


def test_register_synonym_extends_the_table():
    assert parse_labels("smearing") == set()
    register_synonym(r"smear\w*", "Blur")
    assert parse_labels("visible smearing") == {"Blur"}


@pytest.mark.parametrize("text, choice", [
    ("Image A", "A"), ("B", "B"), ("image b.", "B"),
    ("Image A is better than Image B.", "A"),
    ("Image A is worse than image B.", "B"),
    ("Compared with Image A, Image B is clearer.", "B"),
    ("Image B has more noise than Image A, so A is better.", "A"),
    ("Image A suffers from blur while Image B is sharp. Overall, Image B is of higher quality.", "B"),
    ("A difficult call.", None),
    ("I cannot tell.", None),
])
def test_parse_choice(text, choice):
    assert parse_choice(text) == choice


def test_every_synthetic_category_key_reads_as_its_answer_label():
    """The synthetic metadata names categories by key ("contrast_weaken"); evaluation must read each
    as the label the answers use. Read as unknown, a contrast or saturation image counted as clean
    and every correct answer on it as wrong."""
    from depictqa.eval.metrics import identification
    from depictqa.eval.truth import gt_labels
    from depictqa.synth.distortions import CATEGORIES

    assert len(CATEGORIES) == 12
    for key, (label, _phrase) in CATEGORIES.items():
        record = {"id": key, "task": "quality_single_A_noref", "style": "single", "answer": label,
                  "distortions": [{"category": key, "subtype": "x", "severity": 3}]}
        assert gt_labels(record) == {label}
        result = identification([(record, {"id": key, "text": label})])
        assert result["single_accuracy"] == 1.0
    two = {"distortions": [{"category": "saturate_weaken"}, {"category": "blur"}]}
    assert gt_labels(two) == {L("saturate_weaken"), "Blur"}


@pytest.mark.parametrize("key, official, legacy", [
    ("brighten", "Overly high brightness", "Brighten"), ("darken", "Insufficient brightness", "Darken"),
    ("contrast_strengthen", "Overly high contrast", "Contrast strengthen"),
    ("contrast_weaken", "Insufficient contrast", "Contrast weaken"),
    ("saturate_strengthen", "Overly high saturation", "Saturate strengthen"),
    ("saturate_weaken", "Insufficient saturation", "Saturate weaken"),
    ("oversharpen", "Oversharpening", "Oversharpen"), ("pixelate", "Pixelation", "Pixelate"),
    ("quantization", "Color quantization", "Quantization"),
])
def test_official_and_older_labels_name_the_same_category(key, official, legacy):
    assert exact_label(official) == exact_label(legacy) == exact_label(key) == L(key)
    assert parse_labels(f"{official} and noise") == parse_labels(f"{legacy} and noise") == {L(key), "Noise"}
