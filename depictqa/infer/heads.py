"""Where a closed-set answer is decided, derived from the tokenizer and the prompt template.

``score`` and ``prefer`` read one next-token distribution instead of generating. Which position
and which token ids that is depends on how the tokenizer splits the answers *as training targets*
(e.g. a byte-level BPE gives " good" as ["Ġ", "g", ...] and "Image A" as ["Image", "ĠA"]; LLaMA's
SentencePiece gives ["▁Image", "▁A"]). So the candidate answers are encoded exactly as the prompt
builder encodes targets; their longest common prefix is teacher-forced after the prompt and the
first token where they differ identifies each answer. Nothing is hard-coded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from depictqa.prompts import IGNORE


class AmbiguousAnswers(ValueError):
    """Candidate answers that the tokenizer does not tell apart at their first differing token."""


@dataclass(frozen=True)
class ChoiceHead:
    """``prefix``: ids teacher-forced after the prompt; ``ids[i]``: the token naming answer ``i``."""

    prefix: tuple[int, ...]
    ids: tuple[int, ...]
    answers: tuple[str, ...]


def target_ids(prompts: Any, task: str, reference: bool, query: str, answer: str, slots: int) -> list[int]:
    """How the prompt builder tokenises ``answer`` as the training target of this prompt."""
    enc = prompts.encode(task, reference, query, answer, [1] * slots)
    return [int(t) for t in enc.labels[enc.labels != IGNORE]]


def choice_head(prompts: Any, task: str, reference: bool, query: str, answers: Sequence[str],
                slots: int) -> ChoiceHead:
    """Teacher-forced prefix and deciding token of each candidate answer (see module docstring)."""
    targets = [target_ids(prompts, task, reference, query, a, slots) for a in answers]
    d = 0
    while all(d < len(t) for t in targets) and len({t[d] for t in targets}) == 1:
        d += 1
    if any(d >= len(t) for t in targets):
        raise AmbiguousAnswers(f"answers {list(answers)} are prefixes of one another for this tokenizer")
    ids = tuple(t[d] for t in targets)
    if len(set(ids)) != len(ids):
        clash = [a for a, i in zip(answers, ids) if ids.count(i) > 1]
        raise AmbiguousAnswers(f"answers {clash} start with the same token at their first difference; "
                               "pick other answer words or another answer template")
    return ChoiceHead(tuple(targets[0][:d]), ids, tuple(answers))


def letter_ids(tokenizer: Any) -> dict[int, str]:
    """Token ids of the letters A/B as the tokenizer splits "Image A"/"Image B" in running text
    (sentence start and after a space), for finding the choice inside a generated answer."""
    out: dict[int, str] = {}
    for lead in ("", " ", "The "):
        a = tokenizer(f"{lead}Image A", add_special_tokens=False)["input_ids"]
        b = tokenizer(f"{lead}Image B", add_special_tokens=False)["input_ids"]
        d = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        if d is not None:
            out[a[d]], out[b[d]] = "A", "B"
    return out
