"""`depictqa infer` (official meta in, resumable JSON out), `assess` and `compare`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depictqa.cli import main
from tests.infer.conftest import write_png


@pytest.fixture()
def compare_meta(tmp_path, images) -> Path:
    root = tmp_path / "data"
    entries = []
    for i in range(5):
        entries.append({"id": f"p{i}", "image_ref": "img/" + write_png(root / "img" / f"r{i}.png", images[i]),
                        "image_A": "img/" + write_png(root / "img" / f"a{i}.png", images[(i + 1) % 5]),
                        "image_B": "img/" + write_png(root / "img" / f"b{i}.png", images[(i + 2) % 5]),
                        "query": "Which image is better? Answer the question using a single word or phrase."})
    entries[3]["image_B"] = "img/missing.png"          # unreadable: a per-item error
    (root / "img" / "zero.png").write_bytes(b"")
    entries[4]["image_A"] = "img/zero.png"             # zero-size file: a per-item error
    meta = root / "meta.json"
    meta.write_text(json.dumps(entries))
    return meta


def _infer(ckpt, meta, out, *extra: str) -> int:
    return main(["infer", "--ckpt", str(ckpt), "--meta", str(meta), "--task", "quality_compare", "--out", str(out),
                 "--batch-size", "2", "--max-new-tokens", "4", *extra])


def test_infer_writes_official_records_and_per_item_errors(ckpt, compare_meta, tmp_path, capsys):
    out = tmp_path / "answers.json"
    assert _infer(ckpt, compare_meta, out) == 0
    records = json.loads(out.read_text())
    assert [r["id"] for r in records] == [f"p{i}" for i in range(5)]
    assert all(r["text"] and 0 <= r["confidence"] <= 1 for r in records[:3])
    assert "missing.png" in records[3]["error"] and "zero.png" in records[4]["error"]
    assert not Path(str(out) + ".jsonl").exists()
    assert "images/s" in capsys.readouterr().err


def test_infer_resumes_without_duplicating_ids(ckpt, compare_meta, tmp_path):
    full = tmp_path / "full.json"
    assert _infer(ckpt, compare_meta, full) == 0
    expected = {r["id"]: r for r in json.loads(full.read_text())}
    out = tmp_path / "answers.json"
    partial = Path(str(out) + ".jsonl")
    # simulate an interruption: the run's header, two finished records and a line cut in half
    from depictqa.checkpoint import fingerprint

    settings = {"ckpt": str(Path(ckpt).resolve()), "weights": fingerprint(ckpt), "meta": str(compare_meta.resolve()),
                "task": "quality_compare", "mode": "text", "style": "brief", "max_new_tokens": 4,
                "temperature": None, "top_p": None}
    header = json.dumps({"_run": settings})
    done = [dict(expected["p0"], text="FROM THE FIRST RUN"), expected["p1"]]
    partial.write_text("\n".join([header, *map(json.dumps, done)]) + '\n{"id": "p2", "te')
    assert _infer(ckpt, compare_meta, out) == 0
    records = json.loads(out.read_text())
    ids = [r["id"] for r in records]
    assert ids == [f"p{i}" for i in range(5)] and len(set(ids)) == len(ids)
    assert records[0]["text"] == "FROM THE FIRST RUN"  # kept, not recomputed
    assert records[2] == expected["p2"]  # the cut line was redone


def test_resume_with_other_settings_is_refused(ckpt, compare_meta, tmp_path, capsys):
    out = tmp_path / "answers.json"
    Path(str(out) + ".jsonl").write_text(json.dumps({"_run": {"task": "something else"}}) + "\n")
    assert _infer(ckpt, compare_meta, out) == 2
    assert "other settings" in capsys.readouterr().err


def test_prefer_and_score_modes(ckpt, compare_meta, tmp_path, images):
    out = tmp_path / "prefer.json"
    assert _infer(ckpt, compare_meta, out, "--mode", "prefer") == 0
    rec = json.loads(out.read_text())[0]
    assert rec["text"] in ("Image A", "Image B") and abs(sum(rec["probabilities"].values()) - 1) < 1e-5
    both = tmp_path / "both.json"
    assert _infer(ckpt, compare_meta, both, "--mode", "prefer", "--both-orders") == 0
    answered = [(r, a) for r, a in zip(json.loads(both.read_text()), json.loads(out.read_text())) if not r.get("error")]
    assert len(answered) == 3
    for rec, again in answered:
        assert rec["p_a_as_given"] == pytest.approx(again["p_a"], abs=1e-5)  # the first order is the plain run
        assert rec["p_a"] == pytest.approx((rec["p_a_as_given"] + rec["p_a_swapped"]) / 2)
        assert rec["text"] == ("Image A" if rec["p_a"] >= 0.5 else "Image B")
    assert _infer(ckpt, compare_meta, tmp_path / "x.json", "--both-orders") == 2  # only with --mode prefer
    single = tmp_path / "single.json"
    single.write_text(json.dumps([{"id": "s0", "image_A": str(compare_meta.parent / "img" / "a0.png"), "query": "?"}]))
    scored = tmp_path / "scores.json"
    assert main(["infer", "--ckpt", str(ckpt), "--meta", str(single), "--task", "quality_single_A_noref",
                 "--out", str(scored), "--mode", "score", "--images", "/"]) == 0
    rec = json.loads(scored.read_text())[0]
    assert 1 <= rec["score"] <= 5 and set(rec["probabilities"]) == {"excellent", "good", "fair", "poor", "bad"}


def test_meta_entry_not_fitting_the_task_is_rejected_with_its_id(ckpt, tmp_path, capsys):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps([{"id": "ok", "image_ref": "r", "image_A": "a", "image_B": "b"},
                                {"id": "bad-7", "image_ref": "r", "image_A": "a", "image_B": None}]))
    assert _infer(ckpt, meta, tmp_path / "o.json") == 2
    err = capsys.readouterr().err
    assert "bad-7" in err and "image_B" in err and len(err.strip().splitlines()) == 1


def test_non_checkpoint_dir_is_refused_without_unpickling(tmp_path, compare_meta, capsys):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "model.ckpt").write_bytes(b"\x80\x04 would be a pickle")
    assert _infer(fake, compare_meta, tmp_path / "o.json") == 2
    assert "not a depictqa checkpoint" in capsys.readouterr().err


def test_assess_and_compare_commands_print_answer_and_confidence(ckpt, compare_meta, capsys):
    img = compare_meta.parent / "img"
    assert main(["assess", str(img / "a0.png"), "--ckpt", str(ckpt), "--max-new-tokens", "4"]) == 0
    assert "confidence:" in capsys.readouterr().out
    assert main(["compare", str(img / "a0.png"), str(img / "b0.png"), "--ref", str(img / "r0.png"),
                 "--ckpt", str(ckpt), "--json", "--max-new-tokens", "4"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["task"] == "quality_compare" and 0 <= rec["confidence"] <= 1
    assert main(["assess", str(img / "nope.png"), "--ckpt", str(ckpt)]) == 2
    assert "nope.png" in capsys.readouterr().err


def test_infer_answers_several_metas_each_into_its_own_file(ckpt, compare_meta, tmp_path, capsys):
    """Several metas in one call (the model loads once): a folder receives one file per meta, and
    each equals what a one-meta call writes."""
    second = compare_meta.with_name("second.json")
    second.write_text(json.dumps(json.loads(compare_meta.read_text())[:2]))
    folder = tmp_path / "answers"
    assert main(["infer", "--ckpt", str(ckpt), "--meta", str(compare_meta), str(second), "--task",
                 "quality_compare", "--out", str(folder), "--batch-size", "2", "--max-new-tokens", "4"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "second.json"]
    alone = tmp_path / "alone.json"
    assert _infer(ckpt, second, alone) == 0
    assert json.loads((folder / "second.json").read_text()) == json.loads(alone.read_text())
    assert len(json.loads((folder / "meta.json").read_text())) == 5
    # a count of --out that fits neither form is refused before any model loads
    assert main(["infer", "--ckpt", str(ckpt), "--meta", str(compare_meta), str(second), "--task",
                 "quality_compare", "--out", "a.json", "b.json", "c.json"]) == 2
    assert "one file per meta" in capsys.readouterr().err


def test_infer_defaults_to_the_official_400_new_tokens():
    from depictqa.cli import build_parser

    args = build_parser().parse_args(["infer", "--ckpt", "c", "--meta", "m.json", "--task", "quality_compare",
                                      "--out", "o.json"])
    assert args.max_new_tokens == 400
