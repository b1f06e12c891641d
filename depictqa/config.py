"""Recipes: an OmegaConf schema, loading (base + overlays + dotlist), saving; the checks a recipe
passes when it loads are in :mod:`depictqa.recipe_checks`.

A recipe is merged left to right from YAML files and ``key=value`` overrides. Component blocks
(``model.encoder``, ``model.projector``, ``model.llm``, ``logger``, and each entry of the lists
``model.conditioners`` and ``objectives``) are a registry ``name`` plus that builder's arguments;
an override that changes ``name`` *replaces* the block, and the arguments are checked against the
builder's signature before anything is built.

Keys of earlier versions are rewritten with a warning (:data:`DEPRECATED`): ``model.relative_stats``
became the ``relative-stats`` conditioner, ``model.distortion_head`` and
``model.lm_distortion_head`` the ``distortion`` objective.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException



class RecipeError(ValueError):
    """A recipe that does not validate; the message names the key and the valid choices."""


@dataclass
class ImageSchema:
    short_side: int = 224
    max_long_side: int = 672
    min_size: int = 70
    crop: Optional[list[float]] = None
    crop_mode: str = "random"  # random: a box before resizing; center: the official centre crop after resizing
    flip: Optional[str] = None  # training flips shared by a sample's images: h, hv or dihedral
    pad_align: str = "corner"  # corner: pad bottom/right; center: pad evenly (the official code)


@dataclass
class DataSchema:
    sources: dict[str, Any] = field(default_factory=dict)
    val: Optional[dict[str, Any]] = None
    image: ImageSchema = field(default_factory=ImageSchema)
    batch_size: int = 4
    max_tokens_per_batch: Optional[int] = None
    packed: bool = False
    num_workers: int = 0
    resampled: bool = True
    samples_per_epoch: Optional[int] = None
    shuffle_buffer: int = 0
    max_skip_rate: float = 0.01
    val_samples: int = 64
    tokenizer_samples: int = 2000


@dataclass
class ModelSchema:
    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "tiny-vit", "train": "full"})
    projector: dict[str, Any] = field(default_factory=lambda: {"name": "linear", "train": "full"})
    llm: dict[str, Any] = field(default_factory=dict)
    template: str = "depictqa-vicuna"
    encoder_dtype: Optional[str] = None
    # > 0: cache frozen-encoder tokens by image content, up to this many GiB of host memory
    # (needs encoder.train: frozen and no data.image.crop; depictqa/feature_cache.py)
    encoder_cache_gb: float = 0.0
    # stages between projector and LM, [{name: ..., ...}] (depictqa.conditioners; none in DepictQA)
    conditioners: list[Any] = field(default_factory=list)


@dataclass
class OptimSchema:
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 1e-3
    warmup_ratio: float = 0.1
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    grad_clip: Optional[float] = 1.0
    # token: mean over all answer tokens of the batch (long answers weigh more); sample: mean of
    # per-sample means (a one-word label weighs as much as a paragraph); sqrt: each sample's summed
    # loss over the square root of its token count (in between; depictqa.task.reduce_loss).
    loss_reduction: str = "token"
    # learning-rate multipliers by top-level component (encoder / projector / llm), e.g.
    # {projector: 3.0}: newly initialised parts often want a larger step than a pretrained LM.
    lr_scale: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainerSchema:
    max_steps: int = 1000
    max_minutes: Optional[float] = None  # wall-clock budget; the LR schedule then follows time too
    max_epochs: int = -1
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Optional[str] = None
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    val_every_n_steps: Optional[int] = None
    checkpoint_every_n_steps: int = 500
    checkpoint_monitor: Optional[str] = None  # e.g. val/rating_acc: also keep checkpoints/best
    checkpoint_mode: str = "max"
    val_generate: bool = True  # validation also generates `single` answers and scores them
    val_log_answers: int = 16  # of those, how many a W&B logger shows per validation (images, answer, truth)
    activation_checkpointing: bool = False
    # torch.compile each LLM decoder layer (dynamic shapes: native-resolution batches vary in length)
    compile: bool = False
    compile_backend: str = "inductor"  # "aot_eager" checks the traced graph without a C++ compiler
    # Lightning callbacks [{class_path, init_args}], a profiler (simple | advanced | pytorch, or
    # {class_path, init_args}) and the learning-rate monitor (on whenever a logger is)
    callbacks: list[Any] = field(default_factory=list)
    profiler: Any = None
    lr_monitor: bool = True


@dataclass
class Recipe:
    seed: int = 0
    out_dir: str = "runs/depictqa"
    model: ModelSchema = field(default_factory=ModelSchema)
    data: DataSchema = field(default_factory=DataSchema)
    optim: OptimSchema = field(default_factory=OptimSchema)
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    logger: dict[str, Any] = field(default_factory=lambda: {"name": "csv"})
    # further Lightning loggers beside `logger`, [{class_path, init_args}] (e.g. several at once)
    loggers: list[Any] = field(default_factory=list)
    # modules imported before anything is built: a user's registered components and callbacks
    imports: list[str] = field(default_factory=list)
    # training losses beside the answer loss, [{name: ..., weight: ..., ...}] (depictqa.objectives)
    objectives: list[Any] = field(default_factory=list)


# old key -> what it became
DEPRECATED = {
    "model.relative_stats": "model.conditioners: [{name: relative-stats}]",
    "model.distortion_head": "objectives: [{name: distortion, weight: W, source: projected}]",
    "model.lm_distortion_head": "objectives: [{name: distortion, weight: W, source: lm, preference: true}]",
}


def migrate(cfg: DictConfig, where: str) -> tuple[DictConfig, list[dict], list[dict]]:
    """Take the keys of :data:`DEPRECATED` out of one recipe file or override, with a
    ``FutureWarning`` naming each -> (the rest, conditioners to add, objectives to add)."""
    model = cfg.get("model")
    if not isinstance(model, DictConfig) or not any(k.split(".")[1] in model for k in DEPRECATED):
        return cfg, [], []
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    model = cfg.model
    for old, new in DEPRECATED.items():
        if old.split(".")[1] in model:
            warnings.warn(f"{where}: {old} is deprecated; write {new}", FutureWarning, stacklevel=5)
    conditioners = [{"name": "relative-stats"}] if model.pop("relative_stats", False) else []
    objectives = []
    for key, extra in (("distortion_head", {"source": "projected"}),
                       ("lm_distortion_head", {"source": "lm", "preference": True})):
        weight = float(model.pop(key, 0) or 0)
        if weight > 0:
            objectives.append({"name": "distortion", "weight": weight, **extra})
    return cfg, conditioners, objectives


def _read(path: str | os.PathLike) -> DictConfig:
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        cfg = OmegaConf.load(p)
    except Exception as err:  # yaml errors come in many types
        raise RecipeError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(cfg, DictConfig):
        raise RecipeError(f"{path}: a recipe is a mapping, got a list")
    if "_base_" in cfg:
        # A recipe may build on another (path relative to itself); the base is merged first.
        base_path = p.parent / str(cfg.pop("_base_"))
        cfg = _merge(_read(base_path), cfg, str(path))
    return cfg


def _merge(base: DictConfig, overlay: DictConfig, where: str = "recipe") -> DictConfig:
    """Merge, but an overlay whose component block names another ``name`` replaces the block, and
    deprecated keys of the overlay are appended to the lists that replaced them (:func:`migrate`)."""
    overlay, conditioners, objectives = migrate(overlay, where)
    for path in ("model.encoder", "model.projector", "model.llm", "logger"):
        new = OmegaConf.select(overlay, path)
        old = OmegaConf.select(base, path)
        if isinstance(new, DictConfig) and isinstance(old, DictConfig) and "name" in new and new.name != old.get("name"):
            OmegaConf.update(base, path, OmegaConf.create({}), merge=False)
    merged = OmegaConf.merge(base, overlay)
    if conditioners:
        OmegaConf.update(merged, "model.conditioners",
                         [*(OmegaConf.select(merged, "model.conditioners") or []), *conditioners], merge=False)
    if objectives:
        OmegaConf.update(merged, "objectives", [*(merged.get("objectives") or []), *objectives], merge=False)
    return merged


def load_recipe(*paths: str | os.PathLike, overrides: Sequence[str] = (), check_local: bool = True) -> DictConfig:
    """Load ``base [overlays...]`` then ``key=value`` overrides, validate, return the recipe.

    ``check_local=False`` skips what depends on this machine (:func:`check_local_resources`): a recipe read
    to build a model elsewhere need not find its training shards or accelerator here."""
    try:
        cfg = OmegaConf.structured(Recipe)
        for path in paths:
            cfg = _merge(cfg, _read(path), str(path))
        for item in overrides:
            if "=" not in item:
                raise RecipeError(f"override {item!r} is not key=value")
            cfg = _merge(cfg, OmegaConf.from_dotlist([item]), item)
    except OmegaConfBaseException as err:
        raise RecipeError(omegaconf_message(err)) from None
    from depictqa.recipe_checks import validate

    validate(cfg, check_local=check_local)
    return cfg


def omegaconf_message(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None)
    first = str(err).splitlines()[0]
    return f"{key}: {first}" if key else first


def component(block: DictConfig | dict) -> tuple[str, str, dict[str, Any]]:
    """A component block -> (name, train mode, builder kwargs)."""
    data = OmegaConf.to_container(block, resolve=True) if isinstance(block, (DictConfig, ListConfig)) else dict(block)
    name = data.pop("name")
    mode = data.pop("train", None)
    return name, mode, data


def save_recipe(cfg: DictConfig, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, path, resolve=True)


# what may change when a run is resumed: where and how often it reports, and its budget
RESUMABLE_CHANGES = ("trainer.max_steps", "out_dir", "logger", "loggers", "trainer.log_every_n_steps",
                     "trainer.val_every_n_steps", "trainer.checkpoint_every_n_steps", "trainer.callbacks",
                     "trainer.profiler", "trainer.lr_monitor", "trainer.max_minutes", "trainer.val_log_answers")


def diff(a: DictConfig, b: DictConfig, ignore: Sequence[str] = ("trainer.max_steps", "out_dir")) -> list[str]:
    """Human-readable differences between two recipes (dotted keys)."""
    flat_a, flat_b = flatten(OmegaConf.to_container(a, resolve=True)), flatten(OmegaConf.to_container(b, resolve=True))
    keys = sorted(set(flat_a) | set(flat_b))
    return [f"{k}: {flat_a.get(k)!r} -> {flat_b.get(k)!r}" for k in keys
            if flat_a.get(k) != flat_b.get(k) and not any(k.startswith(i) for i in ignore)]


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """A nested container as ``{dotted.key: leaf}``; list items are keyed by their index."""
    if isinstance(d, dict):
        items = d.items()
    elif isinstance(d, list):
        items = enumerate(d)
    else:
        return {prefix[:-1]: d}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}{k}."))
    return out
