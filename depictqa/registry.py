"""Named builders for pluggable components.

Each component family (encoders, projectors, llms) is one :class:`Registry`. A builder is
registered under a stable kebab-case name; recipes refer to it by that name and pass keyword
arguments that are checked against the builder's signature *before* anything is built, so a typo
in a recipe fails in a second with the valid keys listed.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping


class RegistryError(ValueError):
    """A name or an argument that a registry does not know."""


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    description: str

    def parameters(self, skip: Iterable[str] = ()) -> dict[str, inspect.Parameter]:
        params = inspect.signature(self.builder).parameters
        return {k: p for k, p in params.items() if k not in set(skip)
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def accepts_var_kwargs(self) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.builder).parameters.values())


class Registry:
    """A family of builders: ``register`` / ``build`` / ``list``.

    ``injected`` names arguments the library supplies itself (e.g. a projector's ``in_dim`` and
    ``out_dim``, read from the encoder and the LLM); a recipe may not set them.
    """

    def __init__(self, family: str, injected: Iterable[str] = ()) -> None:
        self.family = family
        self.injected = tuple(injected)
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str | None = None) -> Callable[[Callable], Callable]:
        if name != name.lower() or " " in name or "_" in name:
            raise RegistryError(f"{self.family} names are kebab-case, got {name!r}")

        def decorator(builder: Callable) -> Callable:
            if name in self._entries and self._entries[name].builder is not builder:
                raise RegistryError(f"{self.family} {name!r} is already registered")
            doc = description or (inspect.getdoc(builder) or "").split("\n")[0]
            self._entries[name] = Entry(name, builder, doc)
            return builder

        return decorator

    def list(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {name: self._entries[name].description for name in self.list()}

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            valid = ", ".join(self.list()) or "(none registered)"
            raise RegistryError(f"unknown {self.family} {name!r}; valid: {valid}")
        return self._entries[name]

    def check(self, name: str, kwargs: Mapping[str, Any], where: str | None = None) -> None:
        """Raise :class:`RegistryError` if ``kwargs`` do not fit builder ``name``."""
        entry = self.entry(name)
        where = where or self.family
        params = entry.parameters(skip=self.injected)
        for key in kwargs:
            if key in self.injected:
                raise RegistryError(
                    f"{where}.{key} is read from the model's other parts; remove it from the recipe")
            if key not in params and not entry.accepts_var_kwargs():
                valid = ", ".join(sorted(params)) or "(none)"
                raise RegistryError(f"{where}: {self.family} {name!r} has no argument {key!r}; valid: {valid}")
        missing = [k for k, p in params.items() if p.default is p.empty and k not in kwargs]
        if missing:
            raise RegistryError(f"{where}: {self.family} {name!r} needs {', '.join(missing)}")

    def build(self, name: str, /, **kwargs: Any) -> Any:
        entry = self.entry(name)
        supplied = {k: v for k, v in kwargs.items() if k not in self.injected}
        self.check(name, supplied)
        return entry.builder(**kwargs)
