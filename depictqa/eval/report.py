"""Rendering evaluation results: a markdown report, PNG figures and W&B tables.

``results`` is the dict :func:`depictqa.eval.evaluate.evaluate` builds, one key per metric
(``identification``, ``rating``, ``confidence``, ``correlation``, ``description``, ``baselines``,
``matching``). The figures are drawn by :mod:`depictqa.eval.figures`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from depictqa.eval.figures import plot_confusion, plot_examples, plot_reliability, plot_severity


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
            if "voting" in body:  # the official figure
                for k in ("srcc", "plcc", "n_groups"):
                    flat[f"correlation/voting/{k}"] = body["voting"][k]
            for src in ("score", "bradley_terry"):
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
        lines += [f"| ({b['lo']}, {b['hi']}] | {b['n']} | {_fmt(b['accuracy'])} | "
                  f"{_fmt(b['mean_confidence'])} |" for b in conf["bins"]]
    notes = [n for body in results.values() if isinstance(body, dict)
             for n in (body.get("notes") or []) if isinstance(n, str)]
    base = results.get("baselines", {})
    notes += [f"{k}: {'; '.join(v)}" for k, v in base.get("notes", {}).items()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


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


def tables(results: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The report's tables as ``{name: (columns, rows)}``: the headline, identification by
    category and by severity, accuracy by confidence bin, and correlation per reference group."""
    out: dict[str, tuple[list[str], list[list[Any]]]] = {
        "summary": (["metric", "value"], [[k, v] for k, v in headline(results).items()])}
    ident = results.get("identification") or {}
    for key in ("per_category", "per_severity"):
        if ident.get(key):
            out[f"identification_{key}"] = (["group", "n", "accuracy"],
                                            [[k, v["n"], v["accuracy"]] for k, v in ident[key].items()])
    conf = results.get("confidence") or {}
    if conf.get("bins"):
        out["confidence_bins"] = (["lo", "hi", "n", "accuracy", "mean_confidence"],
                                  [[b["lo"], b["hi"], b["n"], b["accuracy"], b["mean_confidence"]] for b in conf["bins"]])
    voting = (results.get("correlation") or {}).get("voting") or {}
    if voting.get("groups"):
        out["voting_groups"] = (["reference", "n", "srcc", "plcc", "logistic_fit"],
                                [[ref, g["n"], g["srcc"], g["plcc"], g["logistic_fit"]]
                                 for ref, g in voting["groups"].items()])
    return out


def log_to_wandb(results: dict[str, Any], logger_or_run: Any,
                 examples: Sequence[dict[str, Any]] | None = None,
                 figures: Sequence[str | Path] = ()) -> None:
    """Log the report to W&B: headline numbers as metrics, every table of :func:`tables`, the
    figures (PNG paths, e.g. from :func:`write_report`) as images, and optional examples.

    ``logger_or_run`` is a Lightning ``WandbLogger`` (its ``.experiment``) or a ``wandb`` run.
    ``examples`` are dicts with ``id``, ``text``, ``answer`` and optional ``image`` (path/array).
    """
    import wandb

    run = getattr(logger_or_run, "experiment", logger_or_run)
    payload: dict[str, Any] = {f"eval/{k}": v for k, v in headline(results).items()}
    for name, (columns, rows) in tables(results).items():
        payload[f"eval/{name}"] = wandb.Table(columns=columns, data=rows)
    for fig in figures:
        payload[f"eval/figures/{Path(fig).stem}"] = wandb.Image(str(fig))
    if examples:
        rows = [[ex.get("id"), wandb.Image(ex["image"]) if ex.get("image") is not None else None,
                 ex.get("text"), ex.get("answer"), json.dumps(ex.get("truth", {}), default=str)]
                for ex in examples]
        payload["eval/examples"] = wandb.Table(
            columns=["id", "image", "prediction", "ground_truth_answer", "ground_truth"], data=rows)
    run.log(payload)
