"""Rendering evaluation results: a markdown report, PNG figures and a W&B table.

``results`` is the dict :func:`depictqa.eval.evaluate.evaluate` builds, one key per metric
(``identification``, ``rating``, ``confidence``, ``correlation``, ``description``, ``baselines``,
``matching``). matplotlib runs on the Agg backend so reports render on headless nodes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def headline(results: dict[str, Any]) -> dict[str, float | int]:
    """The flat ``{metric/name: number}`` view that the table and W&B both show."""
    flat: dict[str, float | int] = {}
    for section, body in results.items():
        if not isinstance(body, dict):
            continue
        for key, value in body.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                flat[f"{section}/{key}"] = value
        if section == "baselines":
            for name, acc in body.get("accuracy", {}).items():
                flat[f"baselines/{name}"] = acc
        if section == "correlation":
            for src in ("score", "voting", "bradley_terry"):
                if src in body:
                    for k in ("srcc", "plcc"):
                        flat[f"correlation/{src}/group_mean_{k}"] = body[src]["per_group_mean"][k]
                        flat[f"correlation/{src}/global_{k}"] = body[src]["global"][k]
    return flat


def markdown(results: dict[str, Any]) -> str:
    """A markdown report: headline table, then per-category / per-severity / per-bin tables."""
    lines = ["# depictqa evaluation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in headline(results).items()]
    ident = results.get("identification")
    if ident and ident.get("n"):
        for title, key in (("category", "per_category"), ("severity", "per_severity")):
            lines += ["", f"## Identification by {title}", "", f"| {title} | n | accuracy |",
                      "|---|---|---|"]
            lines += [f"| {k} | {v['n']} | {_fmt(v['accuracy'])} |" for k, v in ident[key].items()]
    conf = results.get("confidence")
    if conf and conf.get("bins"):
        lines += ["", "## Accuracy by confidence", "", "| bin | n | accuracy | mean confidence |",
                  "|---|---|---|---|"]
        lines += [f"| [{b['lo']}, {b['hi']}) | {b['n']} | {_fmt(b['accuracy'])} | "
                  f"{_fmt(b['mean_confidence'])} |" for b in conf["bins"]]
    notes = [n for body in results.values() if isinstance(body, dict)
             for n in (body.get("notes") or []) if isinstance(n, str)]
    base = results.get("baselines", {})
    notes += [f"{k}: {'; '.join(v)}" for k, v in base.get("notes", {}).items()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(ident: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    conf = ident["confusion"]
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(conf["cols"]), 1 + 0.5 * len(conf["rows"])))
    ax.imshow(conf["counts"], cmap="Blues")
    ax.set_xticks(range(len(conf["cols"])), conf["cols"], rotation=60, ha="right")
    ax.set_yticks(range(len(conf["rows"])), conf["rows"])
    for i, row in enumerate(conf["counts"]):
        for j, n in enumerate(row):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reliability(conf: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    bins = [b for b in conf["bins"] if b["n"]]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["accuracy"] for b in bins],
           width=[b["hi"] - b["lo"] for b in bins], edgecolor="k", alpha=0.7, label="accuracy")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"ECE {_fmt(conf['ece'])}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_severity(ident: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    keys = list(ident["per_severity"])
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.bar(keys, [ident["per_severity"][k]["accuracy"] for k in keys])
    ax.set_xlabel("severity")
    ax.set_ylabel("identification accuracy")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``report.md``, ``results.json`` and the figures that have data; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.md", out / "results.json"]
    written[0].write_text(markdown(results), encoding="utf-8")
    slim = {k: ({kk: vv for kk, vv in v.items() if kk != "items"} if isinstance(v, dict) else v)
            for k, v in results.items()}
    written[1].write_text(json.dumps(slim, indent=2, default=str), encoding="utf-8")
    ident = results.get("identification")
    if ident and ident.get("confusion", {}).get("rows"):
        written.append(plot_confusion(ident, out / "confusion.png"))
    if ident and ident.get("per_severity"):
        written.append(plot_severity(ident, out / "accuracy_by_severity.png"))
    conf = results.get("confidence")
    if conf and conf.get("n"):
        written.append(plot_reliability(conf, out / "reliability.png"))
    return written


def log_to_wandb(results: dict[str, Any], logger_or_run: Any,
                 examples: Sequence[dict[str, Any]] | None = None) -> None:
    """Log the headline numbers as a W&B table (plus examples with images, answer and truth).

    ``logger_or_run`` is a Lightning ``WandbLogger`` (its ``.experiment``) or a ``wandb`` run.
    ``examples`` are dicts with ``id``, ``text``, ``answer`` and optional ``image`` (path/array).
    """
    import wandb

    run = getattr(logger_or_run, "experiment", logger_or_run)
    flat = headline(results)
    table = wandb.Table(columns=["metric", "value"], data=[[k, v] for k, v in flat.items()])
    payload: dict[str, Any] = {"eval/summary": table}
    payload.update({f"eval/{k}": v for k, v in flat.items()})
    if examples:
        rows = [[ex.get("id"), wandb.Image(ex["image"]) if ex.get("image") is not None else None,
                 ex.get("text"), ex.get("answer"), json.dumps(ex.get("truth", {}), default=str)]
                for ex in examples]
        payload["eval/examples"] = wandb.Table(
            columns=["id", "image", "prediction", "ground_truth_answer", "ground_truth"], data=rows)
    run.log(payload)
