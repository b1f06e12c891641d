"""The sample schema of a training shard, and its validation.

One sample holds up to three images -- ``ref`` (pristine reference), ``a`` and ``b`` (distorted
images) or ``img`` (caption data) -- plus a JSON record::

    {"task": "assess|compare|caption", "reference": bool, "style": "single|brief|detail|...",
     "conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}],
     "meta": {... ground truth ...}}

Which image keys a task needs, in which order, comes from the task table (:mod:`depictqa.tasks`):
an ``assess`` sample's image is stored under ``a``, a caption's under ``img``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from depictqa.tasks import KINDS, TaskSpec, spec

TASKS: tuple[str, ...] = KINDS
STYLES: tuple[str, ...] = ("single", "brief", "detail", "level", "caption")
IMAGE_KEYS: tuple[str, ...] = ("ref", "a", "b", "img")
IMAGE_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff")


class SchemaError(ValueError):
    """A sample that does not follow the schema; the message names the shard and the key."""


class RecordParseError(SchemaError):
    """A sample whose JSON record is missing or does not parse (a kind of :class:`SchemaError`)."""


@dataclass
class Sample:
    """A decoded sample: the JSON record plus its images (bytes, PIL images or arrays)."""

    key: str
    task: str
    reference: bool
    conversations: list[dict[str, str]]
    style: str = "brief"
    meta: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> TaskSpec:
        """This sample's row of the task table."""
        return spec(self.task, self.reference)

    @property
    def image_order(self) -> tuple[str, ...]:
        return self.spec.keys

    def record(self) -> dict[str, Any]:
        """The JSON record stored beside the images."""
        return {"task": self.task, "reference": self.reference, "style": self.style,
                "conversations": self.conversations, "meta": self.meta}


def validate_record(record: Any, image_keys: set[str] | frozenset[str], where: str) -> None:
    """Check one JSON record and the image keys that came with it; ``where`` names the sample."""
    if not isinstance(record, Mapping):
        raise SchemaError(f"{where}: json is {type(record).__name__}, expected an object")
    task = record.get("task")
    if task not in TASKS:
        raise SchemaError(f"{where}: task {task!r} is not one of {', '.join(TASKS)}")
    if not isinstance(record.get("reference", False), bool):
        raise SchemaError(f"{where}: 'reference' must be true or false")
    style = record.get("style", "brief")
    if style not in STYLES:
        raise SchemaError(f"{where}: style {style!r} is not one of {', '.join(STYLES)}")
    conv = record.get("conversations")
    if not isinstance(conv, list) or len(conv) < 2 or len(conv) % 2:
        raise SchemaError(f"{where}: 'conversations' must be a list of human/gpt turns")
    for i, turn in enumerate(conv):
        want = "human" if i % 2 == 0 else "gpt"
        if not isinstance(turn, Mapping) or turn.get("from") != want or not isinstance(turn.get("value"), str):
            raise SchemaError(f"{where}: conversations[{i}] must be {{'from': '{want}', 'value': str}}")
    if not isinstance(record.get("meta", {}), Mapping):
        raise SchemaError(f"{where}: 'meta' must be an object")
    need = set(spec(task, bool(record.get("reference", False))).keys)
    missing = need - set(image_keys)
    if missing:
        raise SchemaError(f"{where}: task {task!r} needs image(s) {', '.join(sorted(missing))}")


def sample_from_record(key: str, record: Mapping[str, Any], images: Mapping[str, Any],
                       where: str | None = None) -> Sample:
    validate_record(record, frozenset(images), where or key)
    return Sample(key=key, task=record["task"], reference=bool(record.get("reference", False)),
                  conversations=list(record["conversations"]), style=record.get("style", "brief"),
                  meta=dict(record.get("meta", {})), images=dict(images))
