"""A CI-sized demo end to end: report files, a loss that falls, numbers that `depictqa evaluate` reproduces."""

import csv
import json
import subprocess
import sys

import pytest

from depictqa.demo import BOTH_ORDERS, EVALS


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from depictqa.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    summary = run_demo(out, minutes=0.6, samples=300, test_samples=56, size=48,
                       overrides=["trainer.max_steps=40", "data.batch_size=8", "trainer.checkpoint_every_n_steps=20"])
    return out, summary


def test_demo_writes_the_report_and_figures(demo):
    out, summary = demo
    report = (out / "report.md").read_text()
    assert "| NR identification (single distortion)" in report and "PSNR baseline" in report
    for png in ("loss.png", "confusion_nr.png", "examples.png"):
        assert (out / "figures" / png).stat().st_size > 1000
    assert (out / "run/checkpoints/last/trainable.safetensors").is_file()
    assert set(summary) == ({title for *_, title in EVALS} | {f"{title}, unseen phrasing" for *_, title in EVALS}
                            | {f"{title}, foreign distortions" for *_, title in EVALS}
                            | {title for _, title in BOTH_ORDERS} | {"baselines"})
    # the foreign rows: the demo built the foreign-implementation set, one file per measure
    for stem, *_, title in EVALS:
        row = summary[f"{title}, foreign distortions"]
        assert row["gt"].endswith(f"test_foreign/{stem}.json")
        assert len(json.loads((out / "data" / "test_foreign" / f"{stem}.json").read_text())) == 56 // 14
    assert "| foreign distortions |" in report
    # the unseen-phrasing rows ask the same items in held-out phrasings
    asked = json.loads((out / "eval" / "pred_quality_compare_single_unseen_phrasing.json").read_text())
    assert len(asked) == summary["FR rating (A/B)"]["n"]
    assert 0.0 <= summary["baselines"]["PSNR"] <= 1.0


def test_demo_loss_falls(demo):
    out, _ = demo
    rows = list(csv.DictReader(open(next((out / "run/logs").rglob("metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 4 and losses[-1] < losses[0]


def test_demo_numbers_are_reproduced_by_evaluate(demo, tmp_path):
    out, summary = demo
    jobs = [(f"pred_{stem}.json", stem, metric, title) for stem, _task, metric, title in EVALS]
    jobs += [(f"pred_{stem}_both_orders.json", stem, "rating", title) for stem, title in BOTH_ORDERS]
    for pred, stem, metric, title in jobs:
        proc = subprocess.run([sys.executable, "-m", "depictqa.cli", "evaluate", "--pred", str(out / "eval" / pred),
                               "--gt", str(out / "data/test" / f"{stem}.json"), "--metric", metric,
                               "--out", str(tmp_path / pred)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        result = json.loads((tmp_path / pred / "results.json").read_text())[metric]
        assert result["accuracy"] == pytest.approx(summary[title]["accuracy"], nan_ok=True)


def test_both_orders_rating_averages_the_two_orders(demo):
    out, _ = demo
    for stem, _title in BOTH_ORDERS:
        preds = json.loads((out / "eval" / f"pred_{stem}_both_orders.json").read_text())
        gt = json.loads((out / "data/test" / f"{stem}.json").read_text())
        assert [p["id"] for p in preds] == [g["id"] for g in gt]
        for p in preds:
            assert p["p_a"] == pytest.approx((p["p_a_as_given"] + p["p_a_swapped"]) / 2)
            assert p["text"] == ("Image A" if p["p_a"] >= 0.5 else "Image B")
            assert p["confidence"] == pytest.approx(max(p["p_a"], 1 - p["p_a"]))


def test_second_run_reuses_data_and_checkpoint(demo, capsys):
    from depictqa.demo import run_demo

    out, summary = demo
    before = (out / "run/checkpoints/last/trainable.safetensors").stat().st_mtime
    again = run_demo(out, minutes=0.6, samples=300, test_samples=56, size=48)
    printed = capsys.readouterr().out
    assert "reusing synthesised data" in printed and "reusing checkpoint" in printed
    assert (out / "run/checkpoints/last/trainable.safetensors").stat().st_mtime == before
    assert again["NR rating (A/B)"]["accuracy"] == pytest.approx(summary["NR rating (A/B)"]["accuracy"], nan_ok=True)


def test_foreign_distortion_rows_sit_beside_their_measure(demo, tmp_path):
    """A foreign test set (here: a copy of the test set, so each figure must equal its measure's)
    adds one row per measure, shown in the report beside the in-distribution figure."""
    import shutil

    from depictqa.demo import _table, evaluate
    from depictqa.infer.assessor import Assessor

    out, _ = demo
    shutil.copytree(out / "data" / "test", tmp_path / "data" / "test")
    shutil.copytree(out / "data" / "test", tmp_path / "data" / "test_foreign")
    table = evaluate(tmp_path, Assessor.from_pretrained(out / "run/checkpoints/last", batch_size=8))
    for *_, title in EVALS:
        foreign, own = table[f"{title}, foreign distortions"], table[title]
        assert foreign["gt"].endswith(f"test_foreign/{own['gt'].rsplit('/', 1)[1]}")
        assert foreign["result"]["accuracy"] == pytest.approx(own["result"]["accuracy"], nan_ok=True)
    row = next(line for line in _table(table) if line.startswith("| FR rating (A/B) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == cells[4] != ""  # the foreign column repeats the in-distribution figure here
    assert cells[3].endswith("%")  # the unseen-phrasing figure beside it
