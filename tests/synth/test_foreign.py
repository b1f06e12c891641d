"""The foreign-implementation test split (issue 20, item 3): independent code, monotone severities,
official labels, and test metas that the evaluation reads like the synthetic test set."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from depictqa.eval.foreign import FOREIGN, STEMS, SUBTLE_AT_SEVERITY_1, build_foreign_test_set, foreign_distort
from depictqa.labels import DISTORTIONS

MODULE = Path(__file__).resolve().parents[2] / "depictqa" / "eval" / "foreign.py"
# the synthesiser's distortion code, and everything that imports it
SYNTH_OPS = ("depictqa.synth.distortions", "depictqa.synth.implementations", "depictqa.synth.ops_",
             "depictqa.synth.samples", "depictqa.synth.build", "depictqa.synth.quality", "depictqa.synth.answers")


def test_foreign_code_shares_no_code_path_with_the_synthesiser(tmp_path):
    """Neither the module's own imports nor anything they load reach the synthesiser's operators."""
    tree = ast.parse(MODULE.read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "depictqa.labels" in imported  # the checker sees the module's imports
    assert not [m for m in imported if m and m.startswith(SYNTH_OPS)]
    code = (f"import sys; from depictqa.eval.foreign import build_foreign_test_set; "
            f"build_foreign_test_set({str(tmp_path)!r}, samples=8, size=32); "
            f"print([m for m in sys.modules if m.startswith({SYNTH_OPS!r})])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded



@pytest.mark.parametrize("category", list(FOREIGN))
def test_each_foreign_operation_is_monotone_in_severity(category, images):
    table = []
    for img in images:
        outs = [foreign_distort(category, img, s, seed=1) for s in range(1, 6)]
        assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
        table.append([10 * np.log10(255 ** 2 / ((o.astype(np.float64) - img) ** 2).mean()) for o in outs])
    means = np.mean(table, axis=0)
    assert all(a > b for a, b in zip(means, means[1:])), f"{category}: {means.round(1)}"


def test_bad_input_names_the_culprit(images):
    with pytest.raises(KeyError, match="valid: blur, noise"):
        foreign_distort("vignette", images[0], 2)
    with pytest.raises(ValueError, match="severity"):
        foreign_distort("blur", images[0], 6)
    with pytest.raises(ValueError, match="unchanged"):
        foreign_distort("blur", np.full((32, 32, 3), 128, np.uint8), 5)  # a flat image stays flat


@pytest.fixture(scope="module")
def foreign_set(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("foreign")
    return out, build_foreign_test_set(out, samples=96, seed=0, size=48)


def test_the_set_has_the_test_files_official_labels_and_every_category(foreign_set):
    out, counts = foreign_set
    assert counts == {stem: 24 for stem, _, _ in STEMS}
    labels = {label for label, _ in DISTORTIONS.values()}
    for stem, task, reference in STEMS:
        items = json.loads((out / f"{stem}.json").read_text())
        for it in items:
            assert it["task"] == task and it["style"] == "single" and bool(it["image_ref"]) == reference
            assert it["query"].endswith("Answer the question using a single word or phrase.")
            for key in ("image_ref", "image_A", "image_B"):
                assert it[key] is None or (out / it[key]).is_file()
        if "single" in task:
            assert {it["answer"] for it in items} <= labels and not any(it["image_B"] for it in items)
            cats = Counter(it["distortions"][0]["category"] for it in items)
            assert set(cats) == set(FOREIGN) and max(cats.values()) == 2  # 24 items: each category twice
            if not reference:  # as the official NR tests: no invisible severity-1 tone changes
                assert not [it for it in items if it["severity"] == 1 and it["distortions"][0]["category"]
                            in SUBTLE_AT_SEVERITY_1]
        else:
            for it in items:
                sa, sb = it["distortions_A"][0]["severity"], it["distortions_B"][0]["severity"]
                assert abs(sa - sb) >= 2 and it["A_better_B"] == (sa < sb)
                assert it["answer"] == ("Image A" if sa < sb else "Image B")


def test_the_evaluation_reads_it_as_it_reads_the_synthetic_test_set(foreign_set):
    """Perfect answers score 1 and the labels read back are the categories written."""
    from depictqa.eval import gt_labels, identification, load_ground_truth, match, rating

    out, _ = foreign_set
    gt = load_ground_truth(out / "quality_single_A_single.json")
    assert all(gt_labels(r) == {DISTORTIONS[r["distortions"][0]["category"]][0]} for r in gt)
    perfect = [{"id": r["id"], "text": r["answer"]} for r in gt]
    assert identification(match(perfect, gt).pairs)["single_accuracy"] == 1.0
    gt = load_ground_truth(out / "quality_compare_noref_single.json")
    flipped = [{"id": r["id"], "text": "Image B" if r["A_better_B"] else "Image A"} for r in gt]
    assert rating(match(flipped, gt).pairs)["accuracy"] == 0.0


def test_the_set_is_a_function_of_the_seed(foreign_set, tmp_path):
    out, _ = foreign_set
    build_foreign_test_set(tmp_path, samples=96, seed=0, size=48)
    for stem, _, _ in STEMS:
        assert (tmp_path / f"{stem}.json").read_text() == (out / f"{stem}.json").read_text()
    assert (tmp_path / "images" / "foreign000001_a.png").read_bytes() == (out / "images" / "foreign000001_a.png").read_bytes()
