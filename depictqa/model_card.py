"""Model cards and the shareable checkpoint folder ``depictqa export`` writes.

An exported folder is a checkpoint (:mod:`depictqa.checkpoint`: ``recipe.yaml``,
``trainable.safetensors``, ``adapter/``, ``tokenizer/``) without the optimiser state, plus a
``README.md`` whose YAML front matter the Hugging Face hub reads (library, base model, tags) and
which summarises the recipe, the training data and, when the run has them, the evaluation figures.
Upload the folder as a model repository and :func:`depictqa.load_pretrained` loads it by hub id.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from depictqa.checkpoint import ADAPTER, RECIPE, STATE, TOKENIZER, WEIGHTS, CheckpointError, recipe_of
from depictqa.hub import is_hub_id

RESULTS = "results.json"  # what `depictqa evaluate --out` and `depictqa demo` write
TAGS = ["depictqa", "image-quality-assessment", "multimodal"]


def recipe_summary(recipe: DictConfig) -> dict[str, Any]:
    """The model and training choices of a recipe, one line per part (front matter and card body)."""
    full = OmegaConf.to_container(recipe, resolve=True)
    model = full["model"]
    parts = {}
    for part in ("encoder", "projector", "llm"):
        block = model[part]
        source = block.get("path") or (None if part == "projector" else "from scratch")
        parts[part] = {k: v for k, v in {"name": block["name"], "train": block.get("train"), "weights": source,
                                         "lora": block.get("lora")}.items() if v is not None}
    return {"template": model.get("template"), **parts,
            "conditioners": [c["name"] for c in model.get("conditioners") or []],
            "objectives": [o["name"] for o in full.get("objectives") or []],
            "max_steps": full["trainer"].get("max_steps"), "lr": full["optim"].get("lr")}


def training_data(recipe: DictConfig) -> dict[str, dict[str, Any]]:
    """``{source: {shards, weight}}`` of the recipe's training mix."""
    sources = OmegaConf.to_container(recipe, resolve=True)["data"].get("sources") or {}
    return {name: {"shards": src["shards"], "weight": src.get("weight", 1.0)} for name, src in sources.items()}


def evaluation(results: dict[str, Any]) -> dict[str, float]:
    """Headline numbers of a ``results.json``: the demo's table (``{"table": {title: row}}``) or
    what ``depictqa evaluate`` wrote (one section per metric)."""
    if isinstance(results.get("table"), dict):
        return {f"{title} / {key}": value for title, row in results["table"].items() if isinstance(row, dict)
                for key, value in row.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
    from depictqa.eval.report import headline

    return headline(results)


def model_card(recipe: DictConfig, results: dict[str, Any] | None = None, figures: list[str] = (),
               info: dict[str, Any] | None = None) -> str:
    """README.md for an exported checkpoint: YAML front matter, then the same facts for people.
    ``figures``: paths relative to the folder; ``info``: the training state (``global_step``...)."""
    summary, data = recipe_summary(recipe), training_data(recipe)
    scores = evaluation(results) if results else {}
    meta: dict[str, Any] = {"library_name": "depictqa", "tags": TAGS, "pipeline_tag": "image-text-to-text"}
    bases = [p["weights"] for p in (summary["encoder"], summary["llm"]) if is_hub_id(p.get("weights", ""))]
    if bases:
        meta["base_model"] = bases
    meta["depictqa"] = {"recipe": summary, "training_data": data, "evaluation": scores,
                        "trained_steps": (info or {}).get("global_step")}
    lines = ["---", OmegaConf.to_yaml(OmegaConf.create(meta)).rstrip(), "---", "",
             "# depictqa checkpoint", "",
             "Descriptive image quality assessment: answers in language which distortions an image has, "
             "how bad they are and which of two images is better. Load it with:", "",
             "```python", "import depictqa", "", "assessor = depictqa.Assessor.from_pretrained(\"THIS_FOLDER_OR_HUB_ID\")",
             "print(assessor.assess(\"image.png\").text)", "```", "", "## Model", "",
             "| part | built as | trained |", "|---|---|---|"]
    for part in ("encoder", "projector", "llm"):
        p = summary[part]
        lines.append(f"| {part} | {p['name']}{', ' + str(p['weights']) if p.get('weights') else ''} | {p.get('train')} |")
    lines += ["", f"Prompt template `{summary['template']}`; the full recipe is `{RECIPE}`.", "",
              "## Training data", "", "| source | shards | weight |", "|---|---|---|"]
    lines += [f"| {name} | `{src['shards']}` | {src['weight']} |" for name, src in data.items()]
    if info and info.get("global_step") is not None:
        lines += ["", f"Trained for {info['global_step']} steps."]
    if scores:
        lines += ["", "## Evaluation", "", "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in scores.items()]
    for fig in figures:
        lines += ["", f"![{Path(fig).stem}]({fig})"]
    return "\n".join(lines) + "\n"


def adapter_card(recipe: DictConfig) -> str:
    """README.md of a checkpoint's ``adapter/`` folder: what the adapter is part of."""
    base = OmegaConf.select(recipe, "model.llm.path")
    meta = {"library_name": "peft", "tags": [*TAGS, "lora"], **({"base_model": base} if base and is_hub_id(base) else {})}
    return "\n".join(["---", OmegaConf.to_yaml(OmegaConf.create(meta)).rstrip(), "---", "",
                      "# LoRA adapter of a depictqa checkpoint", "",
                      "The language model's adapter only: the projector and any other trained weights are in "
                      f"`../{WEIGHTS}` and the model is described by `../{RECIPE}`. Load the whole checkpoint "
                      "(the parent folder) with `depictqa.load_pretrained`, not this folder on its own.", ""])


def find_results(ckpt: Path) -> Path | None:
    """The ``results.json`` of a checkpoint's run: in the checkpoint, its run folder (the one holding
    ``checkpoints/``) or the folder above that (where ``depictqa demo`` writes its report)."""
    ckpt = ckpt.resolve()
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt
    for folder in (ckpt, run, run.parent):
        if (folder / RESULTS).is_file():
            return folder / RESULTS
    return None


def checkpoint_of(directory: str | os.PathLike) -> Path:
    """A checkpoint folder, or a run folder's latest checkpoint (``checkpoints/last``)."""
    path = Path(directory)
    if not (path / RECIPE).is_file() and (path / "checkpoints" / "last" / RECIPE).is_file():
        path = path / "checkpoints" / "last"
    if not (path / RECIPE).is_file() or not (path / WEIGHTS).is_file():
        raise CheckpointError(f"{directory} is not a depictqa checkpoint nor a run folder with checkpoints/last "
                              f"(needs {RECIPE} and {WEIGHTS})")
    return path.resolve()


def export(directory: str | os.PathLike, out: str | os.PathLike, results: str | os.PathLike | None = None) -> Path:
    """Write the shareable folder for the checkpoint (or run folder) ``directory`` to ``out``.

    ``results``: a ``results.json`` to report (found beside the run when omitted, see
    :func:`find_results`); the PNGs in a ``figures/`` folder beside it are copied and shown.
    """
    ckpt, target = checkpoint_of(directory), Path(out)
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} already exists and is not empty; export into a new folder")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ckpt / RECIPE, target / RECIPE)
    shutil.copy2(ckpt / WEIGHTS, target / WEIGHTS)
    for sub in (ADAPTER, TOKENIZER):  # state/ (optimiser, objectives) is for resuming, not sharing
        if (ckpt / sub).is_dir():
            shutil.copytree(ckpt / sub, target / sub)
    recipe = recipe_of(ckpt)
    if (target / ADAPTER).is_dir():
        (target / ADAPTER / "README.md").write_text(adapter_card(recipe))
    found = Path(results) if results else find_results(ckpt)
    report, figures = None, []
    if found is not None:
        try:
            report = json.loads(found.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{found}: cannot read the evaluation results ({type(err).__name__}: {err})") from None
        for png in sorted((found.parent / "figures").glob("*.png")):
            (target / "figures").mkdir(exist_ok=True)
            shutil.copy2(png, target / "figures" / png.name)
            figures.append(f"figures/{png.name}")
    info_path = ckpt / STATE / "trainer.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    (target / "README.md").write_text(model_card(recipe, report, figures, info))
    return target
