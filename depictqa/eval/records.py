"""Loading predictions and ground truth in the official formats, and pairing them by ``id``.

Predictions: a JSON list (or ``.jsonl``) of ``{"id", "text", "confidence", ["probabilities"],
["score"], ["error"]}``. Ground truth: an official inference/test meta, a list of ``{"id",
"image_ref", "image_A", "image_B", "query", "answer", ...}`` with the truth fields of any official
variant (read by :mod:`depictqa.eval.truth`). Every problem is an :class:`EvalInputError` whose
message names the file, the record (index and id) and, for ground truth, the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depictqa.eval.truth import RecordError, check_record


class EvalInputError(ValueError):
    """A prediction or ground-truth file that cannot be evaluated; the message names the culprit."""


@dataclass
class Matched:
    """Ground truth paired with predictions, plus the ids that did not pair."""

    pairs: list[tuple[dict[str, Any], dict[str, Any]]]
    missing: list[str] = field(default_factory=list)  # in gt, no prediction
    extra: list[str] = field(default_factory=list)    # predicted, not in gt


def _read_json_records(path: str | Path, what: str) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"{what} file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records = json.loads(text)
    except ValueError as err:
        raise EvalInputError(f"{what} file {path} is not valid JSON ({err})") from None
    if not isinstance(records, list):
        raise EvalInputError(f"{what} file {path} must hold a list of records, "
                             f"got {type(records).__name__}")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "id" not in rec:
            raise EvalInputError(f"{what} file {path}: record {i} has no 'id'")
    return records


def load_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read an official output file (``.json`` list or ``.jsonl``); ids become strings.

    A failed record (``error`` set) from older depictqa versions has ``"text": null``; it is read
    as ``""`` (a wrong answer), as a current one is written.
    """
    records = _read_json_records(path, "prediction")
    for i, rec in enumerate(records):
        rec["id"] = str(rec["id"])
        if rec.get("text") is None and rec.get("error"):
            rec["text"] = ""
        if not isinstance(rec.get("text", ""), str):
            raise EvalInputError(f"prediction file {path}: record {i} ({rec['id']}) 'text' "
                                 "is not a string")
        conf = rec.get("confidence")
        if conf is not None and not isinstance(conf, (int, float)):
            raise EvalInputError(f"prediction file {path}: record {i} ({rec['id']}) "
                                 f"'confidence' is {conf!r}, expected a number or null")
        if conf is not None and not 0.0 <= conf <= 1.0:  # also refuses nan
            raise EvalInputError(f"prediction file {path}: record {i} ({rec['id']}) "
                                 f"'confidence' is {conf!r}, outside [0, 1]")
    _refuse_repeated_ids(records, path, "prediction")
    return records


def load_ground_truth(path: str | Path) -> list[dict[str, Any]]:
    """Read an official test JSON; ids become strings and ``_root`` records the file's folder."""
    records = _read_json_records(path, "ground-truth")
    root = str(Path(path).resolve().parent)
    for i, rec in enumerate(records):
        rec["id"] = str(rec["id"])
        rec.setdefault("_root", root)
        try:
            check_record(rec)
        except RecordError as err:
            raise EvalInputError(f"ground-truth file {path}: record {i} ({rec['id']}): {err}") from None
    _refuse_repeated_ids(records, path, "ground-truth")
    return records


def _refuse_repeated_ids(records: list[dict[str, Any]], path: str | Path, what: str) -> None:
    """Pairing is by id: a repeated one would silently pair with the wrong record."""
    first: dict[str, int] = {}
    for i, rec in enumerate(records):
        if rec["id"] in first:
            raise EvalInputError(f"{what} file {path}: id {rec['id']!r} is repeated "
                                 f"(records {first[rec['id']]} and {i}); ids must be unique")
        first[rec["id"]] = i


def match(predictions: list[dict[str, Any]], ground_truth: list[dict[str, Any]]) -> Matched:
    """Pair predictions with ground truth by ``id`` (the last prediction of a repeated id wins;
    :func:`load_predictions` refuses repeated ids)."""
    by_id = {str(p["id"]): p for p in predictions}
    gt_ids = {str(g["id"]) for g in ground_truth}
    pairs = [(g, by_id[str(g["id"])]) for g in ground_truth if str(g["id"]) in by_id]
    missing = [str(g["id"]) for g in ground_truth if str(g["id"]) not in by_id]
    extra = sorted(i for i in by_id if i not in gt_ids)
    return Matched(pairs, missing, extra)


def is_full_reference(record: dict[str, Any]) -> bool:
    return bool(record.get("image_ref"))


def image_path(record: dict[str, Any], key: str) -> Path | None:
    """Absolute path of ``image_ref`` / ``image_A`` / ``image_B`` (relative to the gt folder)."""
    value = record.get(key)
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else Path(record.get("_root", ".")) / path
