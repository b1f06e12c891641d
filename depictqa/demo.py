"""The embedded default end to end: synthesise -> train -> evaluate -> show answers -> report.

What ``depictqa demo`` (and ``make demo``) runs. Every stage writes under one output folder and is
reused on a second run unless ``fresh`` is set.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

# (test file stem, official task, style, what it measures)
EVALS = [("quality_single_A_noref_single", "quality_single_A_noref", "identification", "NR identification"),
         ("quality_single_A_single", "quality_single_A", "identification", "FR identification"),
         ("quality_compare_noref_single", "quality_compare_noref", "rating", "NR rating (A/B)"),
         ("quality_compare_single", "quality_compare", "rating", "FR rating (A/B)")]
# The same A/B pairs asked in both orders (``Assessor.prefer(both_orders=True)``): the pick is by
# P(A better) averaged over "A then B" and "B then A". (test file stem, title)
BOTH_ORDERS = [("quality_compare_noref_single", "NR rating (A/B), both orders"),
               ("quality_compare_single", "FR rating (A/B), both orders")]


def synthesise(out: Path, samples: int, test_samples: int, size: int, fresh: bool, workers: int = 2) -> dict:
    from depictqa.synth import build_dataset

    manifest = out / "data" / "manifest.json"
    if manifest.is_file() and not fresh:
        print(f"[1/5] reusing synthesised data in {out / 'data'}")
        return json.loads(manifest.read_text())
    shutil.rmtree(out / "data", ignore_errors=True)
    print(f"[1/5] synthesising {samples} training + {test_samples} held-out samples -> {out / 'data'}")
    return build_dataset(out / "data", samples=samples, seed=0, workers=workers, size=size,
                         test_samples=test_samples, progress=True, mix="demo")


def foreign_test_set(out: Path, samples: int, size: int) -> Path:
    """The foreign-implementation test set (:mod:`depictqa.eval.foreign`): the identification and
    rating measures on images whose distortions code the synthesiser never uses made; built once
    under ``data/test_foreign`` with the test set's file names, never trained on."""
    from depictqa.eval.foreign import build_foreign_test_set

    folder = out / "data" / "test_foreign"
    if not (folder / "manifest.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        written = build_foreign_test_set(folder, samples=samples, seed=0, size=size)
        (folder / "manifest.json").write_text(json.dumps(written, indent=1))
    return folder


def train(out: Path, recipe_path: str, minutes: float, fresh: bool, overrides: list[str]) -> Path:
    from depictqa.config import load_recipe
    from depictqa.train import fit

    last = out / "run" / "checkpoints" / "last"
    if (last / "trainable.safetensors").is_file() and not fresh:
        print(f"[2/5] reusing checkpoint {last}")
        return last
    shutil.rmtree(out / "run", ignore_errors=True)
    data = out / "data"
    recipe = load_recipe(recipe_path, overrides=[
        *(f"data.sources.{s}.shards={data / s}/*.tar" for s in ("brief", "detailed", "regulariser")),
        f"out_dir={out / 'run'}", f"trainer.max_minutes={minutes}", "logger={name: csv}", *overrides])
    print(f"[2/5] training {recipe_path} for up to {minutes:.1f} min (max {recipe.trainer.max_steps} steps)")
    return fit(recipe)


def predict(assessor: Any, meta_path: Path, family: str | None = None) -> list[dict[str, Any]]:
    """Greedy ``single`` answers + confidence for an official test meta, in the official output format.
    ``family="heldout"``: ask each item in a phrasing from the held-out family (never trained on)
    instead of the meta's own question."""
    import numpy as np

    from depictqa.infer.batching import Request
    from depictqa.synth.questions import question
    from depictqa.tasks import OFFICIAL

    records = json.loads(meta_path.read_text())
    requests = []
    for i, r in enumerate(records):
        task, reference = OFFICIAL[r["task"]]
        images = {k: str(meta_path.parent / r[f]) for k, f in (("ref", "image_ref"), ("a", "image_A"),
                                                                ("b", "image_B")) if r.get(f)}
        query = r["query"] if family is None else question(task, "single", reference,
                                                           np.random.default_rng(i), family=family)
        requests.append(Request(task, reference, query, images, key=str(r["id"])))
    answers = assessor.answer(requests, style="single", max_new_tokens=16)
    return [{"id": r["id"], "text": a.text, "confidence": a.confidence, **({"error": a.error} if a.error else {})}
            for r, a in zip(records, answers)]


def predict_both_orders(assessor: Any, meta_path: Path) -> list[dict[str, Any]]:
    """Each pair of an official comparison meta asked as given and with A and B swapped; the answer
    is the image whose averaged P(better) is higher, the confidence that probability."""
    records = json.loads(meta_path.read_text())
    by_query: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_query.setdefault(r["query"], []).append(i)

    def path(r: dict[str, Any], key: str) -> str | None:
        return str(meta_path.parent / r[key]) if r.get(key) else None

    out: list[dict[str, Any]] = [{} for _ in records]
    for query, rows in by_query.items():
        picked = [records[i] for i in rows]
        prefs = assessor.prefer([path(r, "image_A") for r in picked], [path(r, "image_B") for r in picked],
                                reference=[path(r, "image_ref") for r in picked], query=query, both_orders=True)
        for i, r, p in zip(rows, picked, prefs):
            out[i] = ({"id": r["id"], "text": "", "confidence": None, "error": p.error} if p.error
                      else {"id": r["id"], **p.both_orders_answer()})
    return out


def evaluate(out: Path, assessor: Any) -> dict[str, Any]:
    from depictqa.eval.baselines import run_baselines
    from depictqa.eval.evaluate import evaluate as compute
    from depictqa.eval.records import load_ground_truth, load_predictions, match

    test, pred_dir = out / "data" / "test", out / "eval"
    pred_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    print("[3/5] evaluating on the held-out set")
    jobs = [(test / f"{stem}.json", metric, title, f"pred_{stem}.json", predict) for stem, _task, metric, title in EVALS]
    jobs += [(test / f"{stem}.json", "rating", title, f"pred_{stem}_both_orders.json", predict_both_orders)
             for stem, title in BOTH_ORDERS]
    # the same items asked in phrasings of the held-out family: words and framings never trained on
    jobs += [(test / f"{stem}.json", metric, f"{title}, unseen phrasing", f"pred_{stem}_unseen_phrasing.json",
              lambda a, path: predict(a, path, family="heldout")) for stem, _task, metric, title in EVALS]
    foreign = out / "data" / "test_foreign"
    if foreign.is_dir():  # distortions made by another implementation, asked as the test set asks
        jobs += [(foreign / f"{stem}.json", metric, f"{title}, foreign distortions", f"pred_{stem}_foreign.json", predict)
                 for stem, _task, metric, title in EVALS if (foreign / f"{stem}.json").is_file()]
    for gt_path, metric, title, pred_name, run in jobs:
        start = time.perf_counter()
        preds = run(assessor, gt_path)
        pred_path = pred_dir / pred_name
        pred_path.write_text(json.dumps(preds, indent=1))
        gt = load_ground_truth(gt_path)
        result = compute(match(load_predictions(pred_path), gt).pairs, gt, [metric], use_embeddings=False)
        rows[title] = {"metric": metric, "n": len(gt), "result": result[metric], "pred": str(pred_path),
                       "gt": str(gt_path), "seconds": round(time.perf_counter() - start, 1)}
    fr_pairs = load_ground_truth(test / "quality_compare_single.json")
    scored = run_baselines(fr_pairs, root=test)
    rows["baselines"], rows["baseline_notes"] = scored["accuracy"], scored["notes"]
    return rows


def examples(assessor: Any, test: Path, n: int = 3) -> list[dict[str, Any]]:
    """The model's brief and detailed answers on ``n`` held-out comparisons, beside the ground truth."""
    records = json.loads((test / "quality_compare_detail.json").read_text())[:n]
    shown = []
    for r in records:
        ref, a, b = (str(test / r[k]) for k in ("image_ref", "image_A", "image_B"))
        brief = assessor.compare(a, b, reference=ref, style="brief")
        detail = assessor.compare(a, b, reference=ref, style="detail")
        shown.append({"id": r["id"], "images": [ref, a, b], "query": detail.query if hasattr(detail, "query") else r["query"],
                      "brief": brief.text, "brief_confidence": brief.confidence,
                      "detail": detail.text, "detail_confidence": detail.confidence,
                      "truth": r["answer"], "A_better_B": r["A_better_B"]})
    return shown


def loss_curve(run: Path, path: Path) -> Path | None:
    import csv

    files = sorted((run / "logs").rglob("metrics.csv"))
    if not files:
        return None
    rows = [r for r in csv.DictReader(files[-1].open()) if r.get("train/loss")]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([int(r["step"]) for r in rows], [float(r["train/loss"]) for r in rows], lw=1)
    ax.set(xlabel="step", ylabel="training loss (answer tokens)", yscale="log", title="training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def example_figure(shown: list[dict[str, Any]], path: Path) -> Path:
    from depictqa.eval.figures import plot_examples  # images at a legible size, answers wrapped

    return plot_examples(shown, path)


def write_report(out: Path, table: dict[str, Any], shown: list[dict[str, Any]], timings: dict[str, float]) -> Path:
    from depictqa.eval.report import plot_confusion, write_report as eval_report

    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    loss_png = loss_curve(out / "run", figs / "loss.png")
    ident = table["NR identification"]["result"]
    confusion_png = plot_confusion(ident, figs / "confusion_nr.png")
    examples_png = example_figure(shown, figs / "examples.png") if shown else None
    eval_report({"identification": ident}, out / "eval" / "nr_identification")
    lines = ["# depictqa demo report", "", "Held-out synthetic test set (images and crops disjoint from training).", "",
             *_table(table), "",
             "Rating: the model's greedy one-word answer to each pair as given; *both orders*: the image whose "
             "P(better), averaged over the pair as given and with A and B swapped, is higher (two forward passes). "
             "*Unseen phrasing*: the same items asked in phrasings of the held-out family (framings and words "
             "training never used); *foreign distortions*: the same measures on images distorted by another "
             "implementation (when the demo has that test set).",
             "", f"Timings (s): {json.dumps(timings)}", ""]
    for png, title in ((loss_png, "Training loss"), (confusion_png, "NR identification confusion"),
                       (examples_png, "Held-out examples")):
        if png:
            lines += [f"## {title}", "", f"![{title}]({png.relative_to(out)})", ""]
    if shown:
        lines += ["## What the model says", ""]
        for ex in shown:
            lines += [f"**{ex['id']}** — {ex['query']}", "",
                      f"- brief ({_conf(ex['brief_confidence'])}): {ex['brief']}",
                      f"- detail ({_conf(ex['detail_confidence'])}): {ex['detail']}",
                      f"- ground truth: {ex['truth']}", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


VARIANTS = (", unseen phrasing", ", foreign distortions")  # row-title suffixes shown beside their measure


def _table(table: dict[str, Any]) -> list[str]:
    """Markdown rows: each measure's in-distribution figure with its unseen-phrasing and
    foreign-distortion figures beside it (identification: the single-distortion exact match)."""
    def figure(row: dict[str, Any] | None) -> str:
        if row is None:
            return ""
        res = row["result"]
        return _pct(res["single_accuracy"] if row["metric"] == "identification" else res["accuracy"])

    lines = ["| measure | n | depictqa | unseen phrasing | foreign distortions | notes |", "|---|---|---|---|---|---|"]
    for title, row in table.items():
        if title in ("baselines", "baseline_notes") or title.endswith(VARIANTS):
            continue
        res, beside = row["result"], [figure(table.get(title + v)) for v in VARIANTS]
        if row["metric"] == "identification":
            lines.append(f"| {title} (single distortion) | {res['n_single']} | {figure(row)} | {' | '.join(beside)} | "
                         f"all incl. two-distortion: {_pct(res['accuracy'])} (n={res['n']}), unparsed {res['n_unparsed']} |")
        else:
            lines.append(f"| {title} | {res['n']} | {figure(row)} | {' | '.join(beside)} | unparsed {res['n_unparsed']} |")
    notes = table.get("baseline_notes", {})
    for name, acc in table["baselines"].items():
        note = "; ".join(notes.get(name, [])) if acc != acc else "score-based, same pairs"
        lines.append(f"| FR rating (A/B), {name} baseline | {table['FR rating (A/B)']['n']} | {_pct(acc)} | | | {note} |")
    return lines


def _pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def _conf(x: float | None) -> str:
    return "confidence n/a" if x is None else f"confidence {x:.2f}"


def run_demo(out: str | Path = "demo_out", minutes: float = 10.0, recipe: str | None = None, samples: int = 20000,
             test_samples: int = 5600, size: int = 64, fresh: bool = False, overrides: list[str] | None = None,
             workers: int | None = None) -> dict:
    """The whole demo; returns the results table (also written to ``out/results.json``)."""
    from depictqa.infer.assessor import Assessor

    out = Path(out)
    from importlib.resources import files  # the recipes ship inside the package (wheel or checkout)

    recipe = recipe or str(files("depictqa") / "recipes" / "tiny.yaml")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    manifest = synthesise(out, samples, test_samples, size, fresh,
                          workers=workers or max(1, min(16, os.cpu_count() or 1)))
    # as many foreign items per measure as the synthetic test set has
    foreign_test_set(out, samples=sum(max(1, manifest["test"].get(stem, 0)) for stem, *_ in EVALS), size=size)
    timings["synth"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    # Training gets what synthesis left of the budget, less 8% for evaluating, the examples and
    # the report (~40 s together on 2 cores; building the model counts as training time).
    ckpt = train(out, recipe, max(0.2, 0.92 * minutes - timings["synth"] / 60), fresh, list(overrides or []))
    timings["train"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    assessor = Assessor.from_pretrained(ckpt, batch_size=32)
    table = evaluate(out, assessor)
    timings["evaluate"] = round(time.perf_counter() - t0, 1)
    print("[4/5] the model's answers on three held-out comparisons")
    shown = examples(assessor, out / "data" / "test")
    for ex in shown:
        print(f"  {ex['id']}: brief: {ex['brief']!r} ({_conf(ex['brief_confidence'])})\n"
              f"           detail: {ex['detail'][:160]!r}\n           truth: {ex['truth'][:160]!r}")
    report = write_report(out, table, shown, timings)
    summary = {title: {k: v for k, v in row.items() if k != "result"} | _headline(row) for title, row in table.items()
               if title not in ("baselines", "baseline_notes")}
    summary["baselines"] = table["baselines"]
    (out / "results.json").write_text(json.dumps({"table": summary, "timings": timings, "checkpoint": str(ckpt)},
                                                  indent=1))
    print("[5/5] results")
    print(report.read_text().split("\nTimings")[0])
    print(f"report: {report}\ncheckpoint: {ckpt}\nfigures: {out / 'figures'}")
    return summary


def _headline(row: dict[str, Any]) -> dict[str, Any]:
    res = row["result"]
    keep = ("accuracy", "single_accuracy", "multi_accuracy", "n_single", "n_unparsed", "accuracy_fr", "accuracy_nr")
    return {k: res[k] for k in keep if k in res}
