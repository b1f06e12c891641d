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
    assert "rating/accuracy | 0.6667" in captured.out and "baselines/PSNR | 1.0000" in captured.out
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
