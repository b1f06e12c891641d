"""Typed results of :class:`~depictqa.infer.assessor.Assessor` and its default questions.

The default questions follow the wording of the training data (``depictqa.synth.questions``) and
the official convention that a ``single`` question ends with :data:`SINGLE_WORD`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from depictqa.prompts import SINGLE_WORD

Style = Literal["single", "brief", "detail"]
STYLES: tuple[str, ...] = ("single", "brief", "detail")
LEVELS: tuple[str, ...] = ("excellent", "good", "fair", "poor", "bad")  # weights 5..1

_QUERIES: dict[tuple[str, str, bool], str] = {
    ("assess", "single", False): "What is the distortion type of this image?",
    ("assess", "single", True): "Compared with the reference image, what is the distortion type of the image?",
    ("assess", "brief", False): "What distortions does this image have?",
    ("assess", "brief", True): "Compared with the reference image, what distortions does the image have?",
    ("assess", "detail", False): "Describe the quality of this image in detail.",
    ("assess", "detail", True): "Compared with the reference image, evaluate the image's quality in detail.",
    ("compare", "single", False): "Which image is better, Image A or Image B?",
    ("compare", "single", True): "Compared with the reference image, which image is better, Image A or Image B?",
    ("compare", "brief", False): "Which image is better, Image A or Image B? Answer briefly with a reason.",
    ("compare", "brief", True): ("Compared with the reference image, which of Image A and Image B is better? "
                                 "Answer briefly."),
    ("compare", "detail", False): "Compare the quality of Image A and Image B in detail.",
    ("compare", "detail", True): ("Compared with the reference image, evaluate Image A and Image B in detail "
                                  "and say which is better."),
    ("rate", "single", False): "How would you rate the quality of this image?",
    ("rate", "single", True): "Compared with the reference image, how would you rate the quality of the image?",
    ("caption", "brief", False): "Describe the content of this image.",
}


def default_query(task: str, style: str, reference: bool) -> str:
    """The question asked when the caller gives none (``task``: assess | compare | rate | caption)."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; valid: {', '.join(STYLES)}")
    key = (task, "brief" if task == "caption" else style, reference and task != "caption")
    if key not in _QUERIES:
        raise ValueError(f"no default question for task {task!r} style {style!r}")
    query = _QUERIES[key]
    return query + SINGLE_WORD if key[1] == "single" else query


@dataclass
class _Result:
    task: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Answer(_Result):
    """A generated answer. ``confidence`` in [0, 1] (None for errors, or detail answers without the
    sentence model). ``probabilities``: comparisons, ``{"A": p, "B": p}`` of the letter token
    after "Image" (vocabulary softmax, not renormalised); ``choice``: that letter."""

    text: str | None = None
    confidence: float | None = None
    style: str = "brief"
    probabilities: dict[str, float] | None = None
    choice: str | None = None
    num_tokens: int = 0


@dataclass
class Score(_Result):
    """Q-Align-style rating: ``score`` = sum of weights 5..1 times the level probabilities, so it
    lies in [1, 5] (``normalised`` maps it to [0, 1]); ``probabilities``: level -> probability
    (softmax over the five level tokens only)."""

    score: float | None = None
    probabilities: dict[str, float] | None = None

    @property
    def normalised(self) -> float | None:
        return None if self.score is None else (self.score - 1.0) / 4.0


@dataclass
class Preference(_Result):
    """``p_a``: P(image A is better), softmax over the two letter tokens after "Image".

    With ``both_orders``: ``p_b_when_first`` = the same question with the images swapped (P that
    the image shown first, now B, is better); ``order_sum = p_a + p_b_when_first`` lies in [0, 2]
    and is 1 for an order-consistent model; ``p_a_debiased`` averages both orders.
    """

    p_a: float | None = None
    probabilities: dict[str, float] | None = None
    p_b_when_first: float | None = None
    order_sum: float | None = None
    p_a_debiased: float | None = None
    raw: dict[str, float] | None = field(default=None)  # letter probabilities before renormalising

    @property
    def text(self) -> str | None:
        """"Image A"/"Image B", the form ``depictqa evaluate`` reads for comparisons."""
        return None if self.p_a is None else ("Image A" if self.p_a >= 0.5 else "Image B")

    @property
    def confidence(self) -> float | None:
        return None if self.p_a is None else max(self.p_a, 1.0 - self.p_a)

    def both_orders_answer(self) -> dict[str, Any]:
        """The answer by ``p_a_debiased`` (``prefer(both_orders=True)`` results): ``text``,
        ``confidence``, ``p_a`` (the average) and the two orders' ``p_a_as_given``, ``p_a_swapped``."""
        if self.p_a_debiased is None or self.p_a is None or self.p_b_when_first is None:
            raise ValueError("both_orders_answer needs a Preference from prefer(..., both_orders=True)")
        q = self.p_a_debiased
        return {"text": "Image A" if q >= 0.5 else "Image B", "confidence": max(q, 1.0 - q), "p_a": q,
                "p_a_as_given": self.p_a, "p_a_swapped": 1.0 - self.p_b_when_first}
