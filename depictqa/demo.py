"""The embedded default end to end: synthesise -> train -> evaluate -> show answers -> report.

What ``depictqa demo`` (and ``make demo``) runs. Every stage writes under one output folder and is
reused on a second run unless ``fresh`` is set.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

# (test file stem, official task, style, what it measures)
EVALS = [("quality_single_A_noref_single", "quality_single_A_noref", "identification", "NR identification"),
         ("quality_single_A_single", "quality_single_A", "identification", "FR identification"),
         ("quality_compare_noref_single", "quality_compare_noref", "rating", "NR rating (A/B)"),
         ("quality_compare_single", "quality_compare", "rating", "FR rating (A/B)")]


def synthesise(out: Path, samples: int, test_samples: int, size: int, fresh: bool, workers: int = 2) -> dict:
    from depictqa.synth import build_dataset

    manifest = out / "data" / "manifest.json"
    if manifest.is_file() and not fresh:
        print(f"[1/5] reusing synthesised data in {out / 'data'}")
        return json.loads(manifest.read_text())
    shutil.rmtree(out / "data", ignore_errors=True)
    print(f"[1/5] synthesising {samples} training + {test_samples} held-out samples -> {out / 'data'}")
    return build_dataset(out / "data", samples=samples, seed=0, workers=workers, size=size,
                         test_samples=test_samples, progress=True)


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


def predict(model: Any, meta_path: Path, batch_size: int = 32) -> list[dict[str, Any]]:
    """Greedy answers + confidence for an official test meta, in the official output format."""
    from depictqa.infer.assessor import Assessor

    records = json.loads(meta_path.read_text())
    assessor = model if isinstance(model, Assessor) else Assessor(model, batch_size=batch_size)
    out = []
    for i in range(0, len(records), batch_size):
        chunk = records[i:i + batch_size]
        images = {k: [None if r.get(f) is None else str(meta_path.parent / r[f]) for r in chunk]
                  for k, f in (("ref", "image_ref"), ("a", "image_A"), ("b", "image_B"))}
        reference = images["ref"] if all(images["ref"]) else None
        if chunk[0]["task"].startswith("quality_compare"):
            results = assessor.compare(images["a"], images["b"], reference=reference, style="single",
                                       query=[r["query"] for r in chunk])
        else:
            results = assessor.assess(images["a"], reference=reference, style="single",
                                      query=[r["query"] for r in chunk])
        out += [{"id": r["id"], "text": res.text, "confidence": res.confidence} for r, res in zip(chunk, results)]
    return out


def evaluate(out: Path, ckpt: Path) -> dict[str, Any]:
    from depictqa.eval.baselines import rating_baselines
    from depictqa.eval.command import evaluate as compute
    from depictqa.eval.records import load_ground_truth, load_predictions, match
    from depictqa.infer.assessor import Assessor

    assessor = Assessor.from_pretrained(ckpt)
    test, pred_dir = out / "data" / "test", out / "eval"
    pred_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    print("[3/5] evaluating on the held-out set")
    for stem, _task, metric, title in EVALS:
        gt_path = test / f"{stem}.json"
        start = time.perf_counter()
        preds = predict(assessor, gt_path, metric)
        pred_path = pred_dir / f"pred_{stem}.json"
        pred_path.write_text(json.dumps(preds, indent=1))
        gt = load_ground_truth(gt_path)
        result = compute(match(load_predictions(pred_path), gt).pairs, gt, [metric], use_embeddings=False)
        rows[title] = {"metric": metric, "n": len(gt), "result": result[metric], "pred": str(pred_path),
                       "gt": str(gt_path), "seconds": round(time.perf_counter() - start, 1)}
    fr_pairs = load_ground_truth(test / "quality_compare_single.json")
    rows["baselines"] = rating_baselines(fr_pairs, root=test)
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(len(shown), 3, figsize=(7.5, 2.9 * len(shown)), squeeze=False)
    for row, ex in zip(axes, shown):
        for ax, img, title in zip(row, ex["images"], ("reference", "Image A", "Image B")):
            ax.imshow(Image.open(img))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        row[1].text(0, -0.12, f"model: {ex['brief'][:90]}", transform=row[1].transAxes, fontsize=7, va="top")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
