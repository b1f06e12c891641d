"""The report's figures: confusion matrix, reliability, accuracy by severity, and examples.

matplotlib is imported inside each function (on the Agg backend, so reports render on headless
nodes); importing this module loads nothing heavy.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Sequence


def _fmt(v: Any) -> str:
    return "n/a" if isinstance(v, float) and v != v else (f"{v:.4f}" if isinstance(v, float) else str(v))


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
    """Accuracy per official confidence bin. Each bar spans its bin's edges exactly (the bins are
    uneven: [0, .5] is ten times [.95, 1]) and carries its item count, so a bin holding one item
    reads as one item rather than as a confident bar."""
    plt = _plt()
    bins = [b for b in conf["bins"] if b["n"]]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar([b["lo"] for b in bins], [b["accuracy"] for b in bins], width=[b["hi"] - b["lo"] for b in bins],
           align="edge", edgecolor="k", alpha=0.6, label="accuracy in bin")
    ax.plot([b["mean_confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C3",
            label="at mean confidence")
    for b in bins:
        ax.annotate(f"n={b['n']}", ((b["lo"] + b["hi"]) / 2, 0.02), ha="center", va="bottom", fontsize=7,
                    rotation=90 if b["hi"] - b["lo"] < 0.08 else 0)
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence", ylabel="accuracy",
           title=f"ECE {_fmt(conf['ece'])} ({conf['n']} answers)")
    ax.set_xticks([e for e in sorted({b["lo"] for b in conf["bins"]} | {1.0}) if e != 0.95])  # .95 crowds .9 and 1
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
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


EXAMPLE_PANEL_IN = 2.0  # inches per image: a 64 px image drawn at ~100 px per inch is legible


def plot_examples(examples: Sequence[dict[str, Any]], path: Path, *, width: int = 62, max_lines: int = 7) -> Path:
    """One row per example: its images side by side at a legible size (small images are
    enlarged with nearest-neighbour pixels, not blurred), then the question, the model's answers
    and the ground truth, wrapped to ``width`` characters (at most ``max_lines`` lines each).

    ``examples``: dicts with ``images`` (paths or arrays, reference first), ``titles`` (optional,
    default reference / Image A / Image B), ``query``, ``answers`` (``{label: text}``, e.g. brief
    and detail) and ``truth``; or the demo's ``brief`` / ``detail`` / ``*_confidence`` keys.
    """
    plt = _plt()
    from PIL import Image

    n_img = max(len(ex["images"]) for ex in examples)
    texts = [_example_text(ex, width, max_lines) for ex in examples]
    # each row as tall as its text needs (8 pt monospace: ~0.17 in a line with its spacing), at least the images
    heights = [max(EXAMPLE_PANEL_IN + 0.5, 0.17 * (t.count("\n") + 1) + 0.3) for t in texts]
    fig = plt.figure(figsize=(EXAMPLE_PANEL_IN * n_img + 5.2, sum(heights) * 1.08))
    grid = fig.add_gridspec(len(examples), n_img + 1, width_ratios=[1] * n_img + [2.6], height_ratios=heights,
                            wspace=0.08, hspace=0.08)
    for row, ex in enumerate(examples):
        titles = ex.get("titles") or ["reference", "Image A", "Image B"][-len(ex["images"]):]
        for col, (img, title) in enumerate(zip(ex["images"], titles)):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(Image.open(img).convert("RGB") if isinstance(img, (str, Path)) else img,
                      interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.axis("off")
        text_ax = fig.add_subplot(grid[row, n_img])
        text_ax.axis("off")
        text_ax.text(0, 1, texts[row], va="top", ha="left", fontsize=8,
                     family="monospace", transform=text_ax.transAxes)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _example_text(ex: dict[str, Any], width: int, max_lines: int) -> str:
    answers = ex.get("answers") or {
        f"{k} ({_conf(ex.get(f'{k}_confidence'))})": ex[k] for k in ("brief", "detail") if ex.get(k) is not None}
    parts = [(str(ex.get("id", "")), ex.get("query", ""))]
    parts += [(f"model, {label}", text) for label, text in answers.items()]
    parts.append(("ground truth", ex.get("truth", "")))
    lines: list[str] = []
    for label, text in parts:
        wrapped = textwrap.wrap(str(text or ""), width) or [""]
        if len(wrapped) > max_lines:
            wrapped = wrapped[:max_lines - 1] + [textwrap.shorten(" ".join(wrapped[max_lines - 1:]), width)]
        lines += [f"{label}:"] + [f"  {w}" for w in wrapped]
    return "\n".join(lines)


def _conf(x: float | None) -> str:
    return "confidence n/a" if x is None else f"confidence {x:.2f}"
