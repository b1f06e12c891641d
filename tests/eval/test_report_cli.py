import json
import sys
import types

import numpy as np

from depictqa.cli import main
from depictqa.data.schema import Sample
from depictqa.data.shards import write_shards
from depictqa.eval import check_leakage, load_ground_truth, log_to_wandb, write_report
from depictqa.eval.evaluate import evaluate


def _predictions(path, records):
    path.write_text(json.dumps(records))
    return str(path)


def test_cli_exit_2_on_missing_file(tmp_path, capsys):
    rc = main(["evaluate", "--pred", str(tmp_path / "nope.json"), "--gt", str(tmp_path / "gt.json"),
               "--metric", "rating"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "gt.json" in err[0]


def test_cli_exit_2_on_bad_prediction(compare_set, tmp_path, capsys):
    pred = _predictions(tmp_path / "p.json", [{"text": "Image A"}])
    assert main(["evaluate", "--pred", pred, "--gt", str(compare_set), "--metric", "rating"]) == 2
    assert "record 0 has no 'id'" in capsys.readouterr().err


def test_cli_end_to_end_writes_report(compare_set, tmp_path, capsys):
    pred = _predictions(tmp_path / "p.jsonl", [])
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"id": "c0", "text": "Image A", "confidence": 0.9},
        {"id": "c1", "text": "Image A", "confidence": 0.6},
        {"id": "c2", "text": "Image A is better.", "confidence": None},
        {"id": "zz", "text": "Image B"}]))
    out = tmp_path / "report"
    rc = main(["evaluate", "--pred", pred, "--gt", str(compare_set), "--metric", "rating",
               "confidence", "--baselines", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0
    assert "rating/accuracy | 0.3333" in captured.out  # official exact match: "Image A is better." misses
    assert "rating/accuracy_parsed_choice | 0.6667" in captured.out and "baselines/PSNR | 1.0000" in captured.out
    assert "1 gt ids have no prediction" in captured.err and "1 predicted ids" in captured.err
    results = json.loads((out / "results.json").read_text())
    assert results["confidence"]["n_missing_confidence"] == 1  # c2 is null
    assert (out / "reliability.png").stat().st_size > 1000
    assert (out / "report.md").read_text().startswith("# depictqa evaluation")


def test_report_figures_for_identification(tmp_path, assess):
    gt = [assess("1", ["Noise"], 1), assess("2", ["Blur"], 3), assess("3", [], None)]
    preds = [{"id": "1", "text": "Noise", "confidence": 0.9}, {"id": "2", "text": "Noise"},
             {"id": "3", "text": "None", "confidence": 0.7}]
    from depictqa.eval import match
    res = evaluate(match(preds, gt).pairs, gt, ["identification", "confidence"])
    paths = write_report(res, tmp_path)
    names = {p.name for p in paths}
    assert {"confusion.png", "accuracy_by_severity.png", "reliability.png", "report.md"} <= names
    assert all(p.stat().st_size > 0 for p in paths)


def test_log_to_wandb_uses_a_fake_run(monkeypatch):
    logged = {}

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data

    fake = types.SimpleNamespace(Table=Table, Image=lambda x: ("img", x))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run = types.SimpleNamespace(log=logged.update)
    log_to_wandb({"rating": {"accuracy": 0.75, "n": 4}}, types.SimpleNamespace(experiment=run),
                 examples=[{"id": "1", "text": "Image A", "answer": "Image B", "image": np.zeros((4, 4, 3))}])
    assert logged["eval/rating/accuracy"] == 0.75
    assert logged["eval/examples"].data[0][2] == "Image A"


def test_leakage_finds_planted_duplicate(compare_set, tmp_path, capsys):
    from PIL import Image
    ref_png = (compare_set.parent / "ref1.png").read_bytes()
    other = np.asarray(Image.open(compare_set.parent / "a2.png"))  # same pixels, re-encoded as array
    clean = np.full((32, 32, 3), 7, np.uint8)
    samples = [Sample(key="s0", task="assess", reference=True, style="single",
                      conversations=[{"from": "human", "value": "q"}, {"from": "gpt", "value": "Noise"}],
                      images={"ref": ref_png, "a": clean}),
               Sample(key="s1", task="assess", reference=False, style="single",
                      conversations=[{"from": "human", "value": "q"}, {"from": "gpt", "value": "Noise"}],
                      images={"a": other})]
    shards = write_shards(samples, tmp_path / "shards")
    res = check_leakage(load_ground_truth(compare_set), shards)
    assert res["references_leaked"] == 1 and res["distorted_leaked"] == 1
    assert {h["path"].rsplit("/", 1)[-1] for h in res["hits"]} == {"ref1.png", "a2.png"}
    rc = main(["evaluate", "--check-leakage", "--train", *shards, "--gt", str(compare_set)])
    assert rc == 1 and "2 of 9 test images" in capsys.readouterr().out


def _mixed_fixture(tmp_path):
    """Assess (single and multi), compare (with MOS) and detailed records, and answers to them."""
    gt = [{"id": "s0", "task": "quality_single_A", "image_ref": "r.png", "image_A": "a.png", "answer": "Noise",
           "distortion_class": "noise", "severity": 2},
          {"id": "m0", "image_A": "a.png", "answer": "Blur and noise", "distortion_classes": ["blur", "noise"]},
          {"id": "d0", "task": "quality_single_A", "image_A": "a.png", "style": "detail",
           "answer": "The image shows strong noise across the sky and some blur on the edges of the building."}]
    preds = [{"id": "s0", "text": "Noise", "confidence": 0.9}, {"id": "m0", "text": "Blur", "confidence": 0.7},
             {"id": "d0", "text": "There is heavy noise in the sky, and the building looks sharp."}]
    for i in range(4):
        gt.append({"id": f"c{i}", "task": "quality_compare", "image_ref": "ref.png", "image_A": f"x{i}.png",
                   "image_B": f"x{i + 1}.png", "A_better_B": False, "mos_A": float(i), "mos_B": float(i + 1)})
        preds.append({"id": f"c{i}", "text": "Image B", "confidence": 0.8})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    return _predictions(tmp_path / "pred.json", preds), str(tmp_path / "gt.json")


def test_cli_runs_every_metric_value(tmp_path, capsys):
    """Each --metric value, and "all", on one small fixture (correlation and description used to
    crash with AttributeError: the package re-exports functions under the submodules' names)."""
    from depictqa.eval.evaluate import METRICS

    pred, gt = _mixed_fixture(tmp_path)
    for metric in (*METRICS, "all"):
        rc = main(["evaluate", "--pred", pred, "--gt", gt, "--metric", metric, "--no-embeddings",
                   "--out", str(tmp_path / metric)])
        assert rc == 0, (metric, capsys.readouterr().err)
        results = json.loads((tmp_path / metric / "results.json").read_text())
        assert (set(METRICS) if metric == "all" else {metric}) <= set(results)
    out = capsys.readouterr().out
    assert "identification/single_accuracy | 1.0000" in out and "identification/multi_accuracy | 0.5000" in out
    assert "correlation/voting/n_groups | 1" in out and "description/n | 1" in out
    assert "correlation/bradley_terry/group_mean_srcc | 1.0000" in out  # a chain of pairs: BT orders it


def test_cli_reads_the_official_mos_file(tmp_path, capsys):
    from tests.eval.test_correlation import mos_tie_fixture

    pred, gt, mos = mos_tie_fixture(tmp_path)
    rc = main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--metric", "correlation", "--mos", str(mos)])
    assert rc == 0
    assert f"correlation/voting/srcc | {(27 / 28) ** 0.5:.4f}" in capsys.readouterr().out
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--metric", "rating", "--mos", str(mos)]) == 2
    (tmp_path / "bad.json").write_text(json.dumps({"ref.png": {"dist_paths": ["d0.png"], "mos_list": ["x"]}}))
    rc = main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--metric", "correlation", "--mos",
               str(tmp_path / "bad.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.json" in err and "mos_list" in err


def test_cli_wandb_offline_run_holds_the_tables(tmp_path, monkeypatch, capsys):
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    pred, gt = _mixed_fixture(tmp_path)
    rc = main(["evaluate", "--pred", pred, "--gt", gt, "--metric", "identification", "confidence", "rating",
               "--wandb"])
    assert rc == 0, capsys.readouterr().err
    runs = list((tmp_path / "wb").rglob("offline-run-*"))
    assert len(runs) == 1
    tables = {p.name.split("_")[0] for p in runs[0].rglob("*.table.json")}
    assert {"summary", "confidence"} <= tables, tables
    assert list(runs[0].rglob("reliability*.png")), "the figures are logged as images"
