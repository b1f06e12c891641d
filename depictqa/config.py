"""Recipes: an OmegaConf schema, loading (base + overlays + dotlist), validation, saving.

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

from depictqa.registry import RegistryError

COMPONENT_KEYS = ("train", "name")
TRAIN_MODES = ("frozen", "lora", "full")


class RecipeError(ValueError):
    """A recipe that does not validate; the message names the key and the valid choices."""


@dataclass
class ImageSchema:
    short_side: int = 224
    max_long_side: int = 672
    min_size: int = 70
    crop: Optional[list[float]] = None
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
    activation_checkpointing: bool = False
    # torch.compile each LLM decoder layer (dynamic shapes: native-resolution batches vary in length)
    compile: bool = False
    compile_backend: str = "inductor"  # "aot_eager" checks the traced graph without a C++ compiler


@dataclass
class Recipe:
    seed: int = 0
    out_dir: str = "runs/depictqa"
    model: ModelSchema = field(default_factory=ModelSchema)
    data: DataSchema = field(default_factory=DataSchema)
    optim: OptimSchema = field(default_factory=OptimSchema)
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    logger: dict[str, Any] = field(default_factory=lambda: {"name": "csv"})
    # training losses beside the answer loss, [{name: ..., weight: ..., ...}] (depictqa.objectives)
    objectives: list[Any] = field(default_factory=list)


CHOICES = {"optim.schedule": ("cosine", "linear", "constant"),
           "trainer.strategy": ("auto", "ddp", "ddp_spawn", "fsdp", "fsdp2", "deepspeed"),
           "logger.name": ("csv", "wandb", "none"),
           "trainer.checkpoint_mode": ("max", "min"),
           "optim.loss_reduction": ("token", "sample", "sqrt"),
           "trainer.compile_backend": ("inductor", "aot_eager", "eager", "cudagraphs")}

# smallest value each numeric key may take (a batch of 0 samples or 0 steps hangs or divides by 0)
MINIMUMS = {"data.batch_size": 1, "data.val_samples": 1, "data.num_workers": 0, "data.image.short_side": 1,
            "data.image.max_long_side": 1, "data.image.min_size": 1, "trainer.max_steps": 1,
            "trainer.accumulate_grad_batches": 1, "trainer.checkpoint_every_n_steps": 0}

# Lightning 2.x's accepted precision strings (lightning.fabric.connector._PRECISION_INPUT); null picks one
PRECISIONS = ("16-mixed", "bf16-mixed", "32-true", "16-true", "bf16-true", "64-true", "transformer-engine",
              "transformer-engine-float16", "16", "bf16", "32", "64")

LR_SCALE_KEYS = ("encoder", "projector", "llm", "conditioners", "objectives")

# what depictqa.train.make_logger passes on, by logger name (wandb: WandbLogger's and wandb.init's arguments)
LOGGER_KEYS = {
    "none": ("save_dir",),
    "csv": ("save_dir", "version", "prefix", "flush_logs_every_n_steps"),
    "wandb": ("save_dir", "version", "offline", "dir", "id", "anonymous", "project", "log_model", "prefix",
              "checkpoint_name", "add_file_policy", "entity", "notes", "tags", "config", "config_exclude_keys",
              "config_include_keys", "allow_val_change", "group", "job_type", "mode", "force", "reinit",
              "resume", "resume_from", "fork_from", "save_code", "tensorboard", "sync_tensorboard",
              "monitor_gym", "settings"),
}


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
        raise RecipeError(_omegaconf_message(err)) from None
    validate(cfg, check_local=check_local)
    return cfg


def _omegaconf_message(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None)
    first = str(err).splitlines()[0]
    return f"{key}: {first}" if key else first


def validate(cfg: DictConfig, check_local: bool = True) -> None:
    """Check choices, values and every component block against its builder, without building
    anything; with ``check_local`` also the shard files and the accelerator (:func:`check_local_resources`)."""
    from depictqa import encoders, llms, projectors
    from depictqa.prompts import TEMPLATES

    try:  # interpolations (${key}, ${oc.env:VAR}, ...) fail here, named, not deep inside fit
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise RecipeError(_omegaconf_message(err)) from None
    for key, valid in {"model.template": TEMPLATES, **CHOICES}.items():
        value = OmegaConf.select(cfg, key)
        if value not in valid:
            raise RecipeError(f"{key}: {value!r} is not one of {', '.join(valid)}")
    for part, registry in (("encoder", encoders.REGISTRY), ("projector", projectors.REGISTRY),
                           ("llm", llms.REGISTRY)):
        block = OmegaConf.to_container(cfg.model[part], resolve=True)
        where = f"model.{part}"
        if "name" not in block:
            raise RecipeError(f"{where}.name is missing; valid: {', '.join(registry.list())}")
        mode = block.get("train", "frozen" if part != "projector" else "full")
        if mode not in TRAIN_MODES or (mode == "lora" and part != "llm"):
            valid = TRAIN_MODES if part == "llm" else ("frozen", "full")
            raise RecipeError(f"{where}.train: {mode!r} is not one of {', '.join(valid)}")
        kwargs = {k: v for k, v in block.items() if k not in COMPONENT_KEYS}
        try:
            registry.check(block["name"], kwargs, where=where)
        except RegistryError as err:
            raise RecipeError(str(err)) from None
        if part == "llm" and mode == "lora" and not block.get("lora"):
            raise RecipeError("model.llm.train is 'lora' but model.llm.lora is not set (r, alpha, dropout, targets)")
        for key in ("path", "checkpoint"):
            value = block.get(key)
            if isinstance(value, str) and _looks_local(value) and not Path(value).exists():
                raise RecipeError(f"{where}.{key}: {value} does not exist")
    _validate_lists(cfg)
    for name, source in (cfg.data.sources or {}).items():
        if not isinstance(source, DictConfig) or "shards" not in source:
            raise RecipeError(f"data.sources.{name}: needs 'shards' (and optionally 'weight')")
        unknown = set(source) - {"shards", "weight"}
        if unknown:
            raise RecipeError(f"data.sources.{name}: unknown key(s) {', '.join(sorted(unknown))}; valid: shards, weight")
        if float(source.get("weight", 1.0)) <= 0:
            raise RecipeError(f"data.sources.{name}.weight must be > 0")
    crop = cfg.data.image.crop
    if crop is not None and (len(crop) != 2 or not 0 < crop[0] <= crop[1] <= 1):
        raise RecipeError("data.image.crop: expected [low, high] with 0 < low <= high <= 1")
    from depictqa.data.images import FLIPS, PAD_ALIGNS

    flip = cfg.data.image.flip
    if flip is not None and flip not in FLIPS:
        raise RecipeError(f"data.image.flip: {flip!r} is not one of {', '.join(FLIPS)} (or null)")
    if cfg.data.image.pad_align not in PAD_ALIGNS:
        raise RecipeError(f"data.image.pad_align: {cfg.data.image.pad_align!r} is not one of {', '.join(PAD_ALIGNS)}")
    _validate_values(cfg)
    _validate_logger(cfg)
    if check_local:
        check_local_resources(cfg)


def _validate_values(cfg: DictConfig) -> None:
    """Numeric ranges, precision, accelerator name and ``optim.lr_scale`` keys."""
    for key, minimum in MINIMUMS.items():
        value = OmegaConf.select(cfg, key)
        if value < minimum:
            raise RecipeError(f"{key} must be >= {minimum}, got {value}")
    image = cfg.data.image
    if image.short_side > image.max_long_side:
        raise RecipeError(f"data.image.short_side ({image.short_side}) must be <= data.image.max_long_side "
                          f"({image.max_long_side})")
    if not cfg.optim.lr > 0:  # also refuses nan
        raise RecipeError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    unknown = sorted(set(cfg.optim.lr_scale or {}) - set(LR_SCALE_KEYS))
    if unknown:
        raise RecipeError(f"optim.lr_scale.{unknown[0]}: not a component; valid: {', '.join(LR_SCALE_KEYS)}")
    precision = cfg.trainer.precision
    if precision is not None and precision not in PRECISIONS:
        raise RecipeError(f"trainer.precision: {precision!r} is not one of {', '.join(PRECISIONS)} (or null)")
    _accelerator(cfg.trainer.accelerator)


def _accelerator(name: str) -> Any:
    """The accelerator class of a registered name (None for auto, cpu and gpu); refuses others."""
    if name in ("auto", "cpu", "gpu"):  # known without importing Lightning (seconds)
        return None
    from lightning.pytorch.accelerators import AcceleratorRegistry

    valid = sorted({"auto", "gpu", *AcceleratorRegistry.available_accelerators()})
    if name not in valid:
        raise RecipeError(f"trainer.accelerator: {name!r} is not one of {', '.join(valid)}")
    return AcceleratorRegistry[name]["accelerator"]


def _validate_logger(cfg: DictConfig) -> None:
    name = cfg.logger.name
    valid = LOGGER_KEYS[name]
    unknown = sorted(set(cfg.logger) - {"name", *valid})
    if unknown:
        raise RecipeError(f"logger.{unknown[0]}: the {name} logger takes no {unknown[0]!r}; "
                          f"valid: {', '.join(sorted(valid))}")


def check_local_resources(cfg: DictConfig) -> None:
    """What depends on this machine: every local shard of ``data.sources`` and ``data.val`` exists,
    and ``trainer.accelerator`` is available here."""
    sources = {f"data.sources.{name}": source for name, source in (cfg.data.sources or {}).items()}
    if cfg.data.val is not None and "shards" in cfg.data.val:
        sources["data.val"] = cfg.data.val
    for where, source in sources.items():
        _check_shards(f"{where}.shards", source.shards)
    name = cfg.trainer.accelerator
    if name == "gpu":  # Lightning maps gpu to cuda or mps, whichever is there
        import torch

        available = torch.cuda.is_available() or torch.backends.mps.is_available()
    else:
        accelerator = _accelerator(name)
        available = accelerator is None or accelerator.is_available()
    if not available:
        raise RecipeError(f"trainer.accelerator: {name!r} is not available on this machine; use auto or cpu")


def _check_shards(where: str, shards: Any) -> None:
    """Brace-expand and glob like the data pipeline; every local shard must be a file."""
    from depictqa.data.mixer import expand_shards

    specs = [str(s) for s in shards] if isinstance(shards, (list, ListConfig)) else [str(shards)]
    try:
        paths = expand_shards(specs)
    except (FileNotFoundError, ValueError) as err:  # a glob that matches nothing; unbalanced braces
        raise RecipeError(f"{where}: {err}") from None
    local = [p for p in paths if not p.startswith("pipe:") and "://" not in p]
    missing = [p for p in local if not Path(p).is_file()]
    if not paths:
        raise RecipeError(f"{where}: no shard given")
    if missing:
        more = f" ({len(missing)} of the {len(local)} shards of {', '.join(specs)} missing)" if len(local) > 1 else ""
        raise RecipeError(f"{where}: {missing[0]} does not exist{more}")


def _validate_lists(cfg: DictConfig) -> None:
    """``model.conditioners`` and ``objectives``: each entry a registry name plus its arguments."""
    from depictqa import conditioners, objectives

    for where, registry, extra in (("model.conditioners", conditioners.REGISTRY, ()),
                                   ("objectives", objectives.REGISTRY, ("weight",))):
        blocks = OmegaConf.select(cfg, where)
        for i, block in enumerate(blocks or []):
            at = f"{where}[{i}]"
            if not isinstance(block, DictConfig) or "name" not in block:
                raise RecipeError(f"{at}: expected {{name: ..., ...}}; valid names: {', '.join(registry.list())}")
            data = OmegaConf.to_container(block, resolve=True)
            kwargs = {k: v for k, v in data.items() if k != "name" and k not in extra}
            try:
                registry.check(data["name"], kwargs, where=at)
            except RegistryError as err:
                raise RecipeError(str(err) if str(err).startswith(at) else f"{at}: {err}") from None
            if "weight" in extra and not float(data.get("weight", 1.0)) > 0:
                raise RecipeError(f"{at}.weight must be > 0, got {data.get('weight')}")


def _looks_local(value: str) -> bool:
    # A hub id is "org/name"; anything absolute, relative-dotted or with more parts is a folder.
    return value.startswith(("/", "./", "../", "~")) or value.count("/") > 1


def component(block: DictConfig | dict) -> tuple[str, str, dict[str, Any]]:
    """A component block -> (name, train mode, builder kwargs)."""
    data = OmegaConf.to_container(block, resolve=True) if isinstance(block, (DictConfig, ListConfig)) else dict(block)
    name = data.pop("name")
    mode = data.pop("train", None)
    return name, mode, data


def save_recipe(cfg: DictConfig, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, path, resolve=True)


def diff(a: DictConfig, b: DictConfig, ignore: Sequence[str] = ("trainer.max_steps", "out_dir")) -> list[str]:
    """Human-readable differences between two recipes (dotted keys)."""
    flat_a, flat_b = _flatten(OmegaConf.to_container(a, resolve=True)), _flatten(OmegaConf.to_container(b, resolve=True))
    keys = sorted(set(flat_a) | set(flat_b))
    return [f"{k}: {flat_a.get(k)!r} -> {flat_b.get(k)!r}" for k in keys
            if flat_a.get(k) != flat_b.get(k) and not any(k.startswith(i) for i in ignore)]


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}
