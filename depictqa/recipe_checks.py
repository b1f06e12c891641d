"""Recipe validation: every check that runs when a recipe loads, before anything is built.

Choices and numeric ranges, each component block and each ``model.conditioners`` / ``objectives``
entry against its builder's signature, logger keys, and, when the recipe is to train on this
machine (``check_local``), that its shard files and accelerator exist here. Every failure is a
:class:`~depictqa.config.RecipeError` naming the key and, where there are any, the valid values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from depictqa.config import RecipeError, omegaconf_message
from depictqa.registry import RegistryError

COMPONENT_KEYS = ("train", "name")
TRAIN_MODES = ("frozen", "lora", "full")

CHOICES = {"optim.schedule": ("cosine", "linear", "constant"),
           "trainer.strategy": ("auto", "ddp", "ddp_spawn", "fsdp", "fsdp2", "deepspeed"),
           "logger.name": ("csv", "wandb", "tensorboard", "none"),
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
    "tensorboard": ("save_dir", "version", "prefix", "log_graph", "default_hp_metric", "sub_dir"),
    "wandb": ("save_dir", "version", "offline", "dir", "id", "anonymous", "project", "log_model", "prefix",
              "checkpoint_name", "add_file_policy", "entity", "notes", "tags", "config", "config_exclude_keys",
              "config_include_keys", "allow_val_change", "group", "job_type", "mode", "force", "reinit",
              "resume", "resume_from", "fork_from", "save_code", "tensorboard", "sync_tensorboard",
              "monitor_gym", "settings"),
}



def validate(cfg: DictConfig, check_local: bool = True) -> None:
    """Check choices, values and every component block against its builder, without building
    anything; with ``check_local`` also the shard files and the accelerator (:func:`check_local_resources`)."""
    from depictqa import encoders, llms, plugins, projectors
    from depictqa.prompts import TEMPLATES

    plugins.check(cfg)  # imports first: a user's module registers the components named below

    try:  # interpolations (${key}, ${oc.env:VAR}, ...) fail here, named, not deep inside fit
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise RecipeError(omegaconf_message(err)) from None
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
    _validate_sources(cfg.data.sources or {})
    crop = cfg.data.image.crop
    if crop is not None and (len(crop) != 2 or not 0 < crop[0] <= crop[1] <= 1):
        raise RecipeError("data.image.crop: expected [low, high] with 0 < low <= high <= 1")
    from depictqa.data.images import FLIPS, PAD_ALIGNS

    flip = cfg.data.image.flip
    if flip is not None and flip not in FLIPS:
        raise RecipeError(f"data.image.flip: {flip!r} is not one of {', '.join(FLIPS)} (or null)")
    if cfg.data.image.crop_mode not in ("random", "center"):
        raise RecipeError(f"data.image.crop_mode: {cfg.data.image.crop_mode!r} is not one of random, center")
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


def _validate_sources(sources: Any) -> None:
    """Each source: ``shards`` and either a ``weight`` (> 0) or integer ``repeats`` (>= 1, passes per
    epoch, as the official mix); repeats are given for every source or for none."""
    with_repeats = []
    for name, source in sources.items():
        if not isinstance(source, DictConfig) or "shards" not in source:
            raise RecipeError(f"data.sources.{name}: needs 'shards' (and optionally 'weight' or 'repeats')")
        unknown = set(source) - {"shards", "weight", "repeats"}
        if unknown:
            raise RecipeError(f"data.sources.{name}: unknown key(s) {', '.join(sorted(unknown))}; "
                              "valid: shards, weight, repeats")
        if "weight" in source and "repeats" in source:
            raise RecipeError(f"data.sources.{name}: give 'weight' (a share) or 'repeats' (passes per epoch), not both")
        if float(source.get("weight", 1.0)) <= 0:
            raise RecipeError(f"data.sources.{name}.weight must be > 0")
        if "repeats" in source:
            if not isinstance(source.repeats, int) or isinstance(source.repeats, bool) or source.repeats < 1:
                raise RecipeError(f"data.sources.{name}.repeats must be an integer >= 1, got {source.repeats!r}")
            with_repeats.append(name)
    if with_repeats and len(with_repeats) != len(sources):
        missing = sorted(set(sources) - set(with_repeats))
        raise RecipeError(f"data.sources: repeats given for {', '.join(with_repeats)} but not for "
                          f"{', '.join(missing)}; give repeats for every source or use weights")


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
