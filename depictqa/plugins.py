"""User code a recipe brings in: modules to import before building (``imports:`` and the
``depictqa.components`` entry-point group), and Lightning objects in Lightning's
``{class_path, init_args}`` form (``trainer.callbacks``, ``trainer.profiler``, ``loggers``).

Everything is checked when the recipe loads — the module imports, the class exists, is the right
kind of object and accepts its ``init_args`` — so a typo fails in a second, named, before a model
is built. Instances are made only when the Trainer is.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, Sequence

from depictqa.config import RecipeError

ENTRY_POINT_GROUP = "depictqa.components"
PROFILERS = ("simple", "advanced", "pytorch", "xla")  # Lightning's own names for trainer.profiler
_loaded_entry_points = False


def load_imports(modules: Sequence[str]) -> None:
    """Import the recipe's ``imports:`` (their ``@register`` decorators run) and, once per process,
    every module of the ``depictqa.components`` entry-point group of installed packages."""
    global _loaded_entry_points
    if not _loaded_entry_points:
        _loaded_entry_points = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as err:  # an installed plug-in that is broken names itself
                raise RecipeError(f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP}: {err}") from err
    for i, name in enumerate(modules):
        try:
            importlib.import_module(str(name))
        except ImportError as err:
            raise RecipeError(f"imports[{i}]: cannot import {name!r} ({err}); is it on PYTHONPATH?") from None


def resolve_class(spec: Any, where: str, base: type | None = None) -> tuple[type, dict[str, Any]]:
    """``{class_path: "pkg.mod.Class", init_args: {...}}`` -> (class, init_args), checked."""
    if not isinstance(spec, dict) or "class_path" not in spec or set(spec) - {"class_path", "init_args"}:
        raise RecipeError(f"{where}: expected {{class_path: package.module.Class, init_args: {{...}}}}, got {spec!r}")
    path, args = str(spec["class_path"]), dict(spec.get("init_args") or {})
    module_name, _, attr = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr) if module_name else None
    except (ImportError, AttributeError):
        cls = None
    if not inspect.isclass(cls):
        raise RecipeError(f"{where}.class_path: {path!r} is not an importable class")
    if base is not None and not issubclass(cls, base):
        raise RecipeError(f"{where}.class_path: {path} is not a {base.__module__}.{base.__name__}")
    try:
        inspect.signature(cls).bind_partial(**args)
    except TypeError as err:
        raise RecipeError(f"{where}.init_args: {path} does not take them ({err})") from None
    return cls, args


def instantiate(spec: Any, where: str, base: type | None = None) -> Any:
    cls, args = resolve_class(spec, where, base)
    return cls(**args)


def check(cfg: Any) -> None:
    """The recipe's user plug-ins resolve (imports first: a callback may live in an imported module)."""
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.profilers import Profiler

    load_imports(list(cfg.get("imports") or []))
    for i, spec in enumerate(_plain(cfg.trainer.get("callbacks")) or []):
        resolve_class(spec, f"trainer.callbacks[{i}]", Callback)
    for i, spec in enumerate(_plain(cfg.get("loggers")) or []):
        resolve_class(spec, f"loggers[{i}]", Logger)
    profiler = _plain(cfg.trainer.get("profiler"))
    if isinstance(profiler, str):
        if profiler not in PROFILERS:
            raise RecipeError(f"trainer.profiler: {profiler!r} is not one of {', '.join(PROFILERS)} "
                              "or a {class_path, init_args} block")
    elif profiler is not None:
        resolve_class(profiler, "trainer.profiler", Profiler)


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
