"""What a ground-truth record says: its distortion labels, its bare label answer, which image
of a pair is better.

Official metas come in several shapes: single-distortion (``distortion_class``,
``distortion_name``, ``severity``), multi-distortion (``distortion_classes``,
``distortion_names``, ``severities``), depictqa's own (``distortions``: a list of dicts), refAB
pairs (``A_better_B``, ``distortions_A/B`` as lists of dicts or as the official dict of lists)
and test files that carry only the ``answer``. The functions here read all of them; one that meets
a field it cannot read raises :class:`RecordError` naming the field, and
:func:`depictqa.eval.records.load_ground_truth` adds the file and the record.
"""

from __future__ import annotations

from typing import Any

from depictqa.eval.parsing import CLEAN, exact_label, label_answer, parse_choice, parse_labels

COMPARE_TASKS = {"quality_compare", "quality_compare_noref", "compare"}
ASSESS_TASKS = {"quality_single_A", "quality_single_B", "quality_single_A_noref",
                "quality_single_B_noref", "assess"}


def task_kind(record: dict[str, Any]) -> str:
    """``"assess"``, ``"compare"`` or ``"caption"`` from an official or depictqa task name."""
    task = record.get("task") or record.get("task_type") or ""
    if task in COMPARE_TASKS:
        return "compare"
    if task in ASSESS_TASKS:
        return "assess"
    if task in ("description", "caption"):
        return "caption"
    # no task field: a record with two distorted images is a comparison
    return "compare" if record.get("image_A") and record.get("image_B") else "assess"


class RecordError(ValueError):
    """A field of one ground-truth record that cannot be read."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"field {field_name!r}: {message}")
        self.field = field_name


def _assessed(record: dict[str, Any]) -> str:
    """``"B"`` for ``quality_single_B*`` tasks, or a taskless record with only ``image_B``; else ``"A"``."""
    task = str(record.get("task") or record.get("task_type") or "")
    if task:
        return "B" if task.startswith("quality_single_B") else "A"
    return "B" if record.get("image_B") and not record.get("image_A") else "A"


def assessed_key(record: dict[str, Any]) -> str:
    """``"image_A"`` or ``"image_B"``: the field holding the image an assess record asks about."""
    return f"image_{_assessed(record)}"


def _names(record: dict[str, Any], key: str) -> list[str] | None:
    """A list-of-names field, checked; ``None`` when absent."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(key, f"expected a list of names, got {value!r}")
    return value


def gt_distortions(record: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The assessed image's distortions as ``[{"category", "subtype", "severity"}]``.

    ``[]`` for a clean image, ``None`` when the record has no distortion field (the answer must
    tell). Reads ``distortions``, the task's ``distortions_A/B`` (a list of dicts or the official
    dict of lists), ``distortion_classes`` + ``distortion_names`` + ``severities``, and
    ``distortion_class`` + ``distortion_name`` + ``severity``.
    """
    side = f"distortions_{_assessed(record)}"
    for key in ("distortions", side):
        value = record.get(key)
        if isinstance(value, dict):  # official refAB: {"distortion_classes": [...], ...}
            return gt_distortions({k: value.get(k) for k in ("distortion_classes", "distortion_names", "severities")})
        if isinstance(value, list):
            if not all(isinstance(d, dict) for d in value):
                raise RecordError(key, "expected a list of {'category', 'subtype', 'severity'} dicts")
            return value
        if value is not None:
            raise RecordError(key, f"expected a list, got {type(value).__name__}")
    classes = _names(record, "distortion_classes")
    if classes is not None:
        names = _names(record, "distortion_names") or [None] * len(classes)
        sevs = record.get("severities") or [None] * len(classes)
        if len(names) != len(classes) or not isinstance(sevs, list) or len(sevs) != len(classes):
            raise RecordError("distortion_names/severities",
                              f"lengths differ from distortion_classes ({len(classes)})")
        return [{"category": c, "subtype": n, "severity": s} for c, n, s in zip(classes, names, sevs)]
    if "distortion_class" in record:
        cls = record["distortion_class"]
        if cls is None or (isinstance(cls, str) and cls.strip().lower() in ("", "none")):
            return []
        if not isinstance(cls, str):
            raise RecordError("distortion_class", f"expected a name or null, got {cls!r}")
        return [{"category": cls, "subtype": record.get("distortion_name"), "severity": record.get("severity")}]
    return None


def is_multi_distortion(record: dict[str, Any]) -> bool:
    """Scored by the official multi-distortion rule: the record comes from a multi-distortion meta
    (plural fields) or its truth names two or more distortions."""
    side = record.get(f"distortions_{_assessed(record)}")
    if record.get("distortion_classes") is not None or isinstance(side, dict):
        return True
    return len(gt_labels(record)) >= 2


def gt_labels(record: dict[str, Any]) -> set[str]:
    """Ground-truth answer labels of an assess record: ``{"None"}`` for a clean image, ``set()``
    when the record says nothing (no distortion field, no answer naming a distortion).

    The distortion fields decide when every name in them is known (a category key, an official
    label or an older depictqa label); otherwise the ``answer`` does (a bare label answer, or the
    distortions a sentence names).
    """
    dists = gt_distortions(record)
    if dists == []:
        return {CLEAN}
    if dists:
        found = [exact_label(str(d.get("category") or d.get("subtype") or "")) for d in dists]
        if None not in found:
            return set(found)  # type: ignore[arg-type]
    answer = gt_answer(record)
    if answer:
        return label_answer(answer) or parse_labels(answer)
    if dists:
        bad = next(d for d in dists if exact_label(str(d.get("category") or d.get("subtype") or "")) is None)
        raise RecordError("distortion_classes" if "distortion_classes" in record else "distortions",
                          f"unknown distortion {bad.get('category')!r} and no answer to read the truth from")
    return set()


def gt_answer(record: dict[str, Any]) -> str | None:
    """The record's ``answer``, checked to be a string."""
    answer = record.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise RecordError("answer", f"expected a string, got {type(answer).__name__}")
    return answer


def gt_label_answer(record: dict[str, Any]) -> str:
    """The bare label answer the official scripts compare against: the ``answer`` when it is
    one, else the labels of :func:`gt_labels` written the official way ("Blur and noise")."""
    answer = gt_answer(record)
    if answer and label_answer(answer) is not None:
        return answer.strip()
    labels = sorted(gt_labels(record), key=lambda lab: (lab == CLEAN, lab))
    text = " and ".join([labels[0], *(lab.lower() for lab in labels[1:])]) if labels else ""
    return text


def gt_choice(record: dict[str, Any]) -> str | None:
    """Which image of a compare record is better: ``"A"``, ``"B"``, ``"tie"`` (``A_better_B``
    null) or ``None`` (no ``A_better_B`` and no answer). Without ``A_better_B`` the answer tells."""
    if "A_better_B" in record:
        value = record["A_better_B"]
        if value is None:
            return "tie"
        if not isinstance(value, bool):
            raise RecordError("A_better_B", f"expected true, false or null, got {value!r}")
        return "A" if value else "B"
    answer = gt_answer(record)
    if not answer:
        return None
    choice = parse_choice(answer)
    if choice is None:
        raise RecordError("answer", f"no A_better_B, and the answer does not say which image is better: "
                          f"{answer[:80]!r}")
    return choice


def gt_choice_answer(record: dict[str, Any]) -> str:
    """The bare answer the official rating script compares against ("Image A" / "Image B")."""
    answer = (gt_answer(record) or "").strip()
    if answer in ("Image A", "Image B"):
        return answer
    return f"Image {gt_choice(record)}"


def gt_severity(record: dict[str, Any]) -> int | None:
    dists = gt_distortions(record) or []
    sev = dists[0].get("severity") if dists else record.get("severity")
    return int(sev) if isinstance(sev, (int, float)) else None


def check_record(record: dict[str, Any]) -> None:
    """Read every truth field of one record (raises :class:`RecordError` on the first bad one)."""
    kind = task_kind(record)
    gt_answer(record)
    if kind == "assess":
        gt_labels(record)
        gt_severity(record)
    elif kind == "compare":
        gt_choice(record)
    for key in ("image_ref", "image_A", "image_B"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise RecordError(key, f"expected a path or null, got {record[key]!r}")
