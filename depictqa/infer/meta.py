"""The official inference meta JSON in, resumable partial results out.

Meta: a list of ``{"id", "image_ref", "image_A", "image_B", "query"}`` with image paths relative
to the meta file's folder (or an ``--images`` root); the task is given per file. Every entry is
checked against the task before any model loads, so a wrong file fails in a second.

Partial results stream to ``<out>.jsonl``: one header line recording the run's settings, then one
record per finished id, flushed as written. A rerun with the same settings skips the ids already
there (a line cut short by the interruption is dropped and redone); other settings are refused,
since mixing two runs' answers in one file would silently corrupt an evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from depictqa.infer.batching import Request
from depictqa.tasks import OFFICIAL, OFFICIAL_FIELDS

# official task -> meta field of each image key in prompt order
FIELDS: dict[str, dict[str, str]] = OFFICIAL_FIELDS
HEADER = "_run"


class MetaError(ValueError):
    """A meta file or entry that does not fit the task; the message names the file and the id."""


def read_meta(path: str | Path, task: str) -> list[dict[str, Any]]:
    """Load and check the meta list: unique ids, and every image field the task needs present."""
    if task not in FIELDS:
        raise MetaError(f"unknown task {task!r}; valid: {', '.join(OFFICIAL)}")
    path = Path(path)
    if not path.is_file():
        raise MetaError(f"meta file {path} does not exist")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise MetaError(f"meta file {path} is not valid JSON ({err})") from None
    if not isinstance(entries, list):
        raise MetaError(f"meta file {path} must hold a list of entries, got {type(entries).__name__}")
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("id") is None:
            raise MetaError(f"{path}: entry {i} has no 'id'")
        eid = str(entry["id"])
        if eid in seen:
            raise MetaError(f"{path}: id {eid!r} appears more than once (ids key the output and resuming)")
        seen.add(eid)
        fields = dict(FIELDS[task])
        if task == "description" and "image" not in entry:
            fields["img"] = "image_A"  # description metas name their image either way
        missing = [f for f in fields.values() if not entry.get(f)]
        if missing:
            raise MetaError(f"{path}: id {eid!r} does not fit task {task}: no {', '.join(missing)}")
    return entries


def to_request(entry: dict[str, Any], task: str, root: Path, query: str | None) -> Request:
    """Meta entry -> :class:`Request` (paths resolved against ``root``)."""
    kind, reference = OFFICIAL[task]
    fields = dict(FIELDS[task])
    if task == "description" and "image" not in entry:
        fields["img"] = "image_A"
    images = {key: root / str(entry[f]) for key, f in fields.items()}
    return Request(kind, reference, query or str(entry.get("query") or ""), images, key=str(entry["id"]))


def image_count(task: str) -> int:
    return len(FIELDS[task])


class PartialResults:
    """The ``<out>.jsonl`` stream of finished records (see the module docstring)."""

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path, self.settings = path, settings
        self.records: dict[str, dict[str, Any]] = {}
        if path.is_file():
            self._load()
        self._file = path.open("a", encoding="utf-8")
        if not self.records and path.stat().st_size == 0:
            self._write({HEADER: settings})

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        good: list[str] = []
        for n, line in enumerate(lines):
            try:
                rec = json.loads(line)
            except ValueError:
                if n == len(lines) - 1:
                    break  # the line an interruption cut short: redo that id
                raise MetaError(f"{self.path}: line {n + 1} is not JSON; delete the file to start over") from None
            if n == 0:
                if rec.get(HEADER) != self.settings:
                    raise MetaError(f"{self.path} was written by a run with other settings "
                                    f"({rec.get(HEADER)}); delete it or choose another --out")
            else:
                self.records[str(rec["id"])] = rec
            good.append(line)
        # rewrite without the cut line, so appending never glues a record onto a partial one
        self.path.write_text("".join(g + "\n" for g in good), encoding="utf-8")

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        for rec in records:
            self.records[str(rec["id"])] = rec
            self._write(rec)

    def finish(self, out: Path, order: list[str]) -> list[dict[str, Any]]:
        """Write the final JSON list in meta order (atomically) and drop the partial file."""
        self._file.close()
        final = [self.records[i] for i in order if i in self.records]
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(final, indent=1), encoding="utf-8")
        tmp.replace(out)
        self.path.unlink(missing_ok=True)
        return final

    def close(self) -> None:
        self._file.close()
