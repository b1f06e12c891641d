"""Turning free-text answers into distortion labels and A/B choices.

Bare labels ("Noise", "Blur and noise", "Image A") and sentences ("The image suffers from heavy
blur.", "Therefore, Image B is better.") go through the same two parsers, so training-time
validation, ``depictqa evaluate`` and the synthetic-data checks all agree on what an answer says.

Labels are returned as the labels of the distortion vocabulary (:mod:`depictqa.labels`); a clean answer
is ``{"None"}`` and an answer naming no distortion at all is the empty set, so "unparseable" and
"clean" never collapse into one another.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Literal

from depictqa import labels as _labels
from depictqa.labels import CLEAN, DISTORTIONS, LABELS

CATEGORIES: tuple[str, ...] = LABELS


def _label(key: str) -> str:
    """The answer label of category ``key`` (whatever wording :mod:`depictqa.labels` gives it)."""
    return DISTORTIONS[key][0]


# Phrase -> category key. Keys are regular expressions over normalised text (lower case, single
# spaces, no punctuation). Longer phrases are tried first so "overly high brightness" is not read
# as the ambiguous "brightness". Both the official answer labels ("Overly high contrast") and the
# older depictqa labels ("Contrast strengthen") are here. Extend with ``register_synonym``.
_PHRASES: dict[str, str] = {
    r"motion blur\w*|gaussian blur\w*|defocus\w*|out of focus|blur\w*|unsharp|not sharp": "blur",
    r"nois\w*|grain\w*|speckle\w*": "noise",
    r"compress\w*|jpeg\w*|jpg|block\w* artifact\w*|blocking|blockiness": "compression",
    r"overly high brightness|too bright|overexpos\w*|over exposed|brighten\w*|excessive brightness|"
    r"high brightness|washed out": "brighten",
    r"insufficient brightness|low brightness|too dark|underexpos\w*|under exposed|darken\w*|"
    r"dim\b|low light": "darken",
    r"overly high contrast|excessive contrast|high contrast|contrast strengthen\w*|"
    r"increased contrast|too much contrast": "contrast_strengthen",
    r"insufficient contrast|low contrast|contrast weaken\w*|reduced contrast|lack of contrast|"
    r"flat contrast": "contrast_weaken",
    r"overly high saturation|oversaturat\w*|over saturat\w*|excessive saturation|"
    r"high saturation|saturate strengthen\w*|saturation strengthen\w*": "saturate_strengthen",
    r"insufficient saturation|undersaturat\w*|under saturat\w*|desaturat\w*|low saturation|"
    r"saturate weaken\w*|saturation weaken\w*|washed out colou?rs": "saturate_weaken",
    r"oversharp\w*|over sharp\w*|excessive sharpening|halo\w*": "oversharpen",
    r"pixel\w*|mosaic": "pixelate",
    r"colou?r quantization|quantiz\w*|quantis\w*|posteriz\w*|banding|colou?r banding": "quantization",
}
_CLEAN_PHRASES = (r"none|no distortions?|clean|pristine|undistorted|no (?:visible |obvious )?"
                  r"(?:quality )?(?:issues?|degradations?|artifacts?)|distortion free")
# A mention preceded by one of these within three words is a denial, not a finding
# ("no noticeable noise", "free of blur").
_NEGATIONS = {"no", "not", "without", "free", "lacks", "lack", "absence", "nor", "never", "hardly"}


def register_synonym(pattern: str, category: str) -> None:
    """Map the regular expression ``pattern`` (over normalised text) to ``category`` (an answer
    label such as "Blur", or a category key such as "blur")."""
    key = category_key(category)
    if key is None:
        raise ValueError(f"unknown category {category!r}; valid: {', '.join(CATEGORIES)} "
                         f"(or the keys {', '.join(DISTORTIONS)})")
    _PHRASES[pattern] = key
    _compiled.cache_clear()


def _exact_names() -> dict[str, str]:
    """Normalised name -> category key, for every name a label field may hold: the key itself
    ("contrast_weaken"), its answer label, its phrase, and the older labels in ``LEGACY_LABELS``."""
    names = {normalise(key): key for key in DISTORTIONS}
    # the phrases ("overly high contrast", "pixelation") are the official answer labels in lower case
    names.update({normalise(phrase): key for key, (_, phrase) in DISTORTIONS.items()})
    names.update({normalise(label): key for key, (label, _) in DISTORTIONS.items()})
    legacy = getattr(_labels, "LEGACY_LABELS", {})
    names.update({normalise(old): key for old, key in legacy.items() if key in DISTORTIONS})
    return names


def category_key(name: str) -> str | None:
    """The category key a bare label or key names exactly ("Overly high contrast", "Contrast
    strengthen", "contrast_strengthen" -> "contrast_strengthen"); ``None`` if it names none."""
    return _exact_names().get(normalise(name))


def exact_label(name: str) -> str | None:
    """A bare label in any official or older wording -> today's answer label ("None" for clean);
    ``None`` when ``name`` is not exactly a label (a sentence, an unknown word)."""
    if normalise(name) == "none":
        return CLEAN
    key = category_key(name)
    return None if key is None else _label(key)


def label_answer(text: str) -> set[str] | None:
    """The labels of a bare label answer ("Blur and noise", "Overly high brightness"); ``None``
    when ``text`` is not one (a sentence or an unknown word)."""
    found = {exact_label(piece) for piece in re.split(r"\band\b|,", str(text))}
    return None if None in found or not text.strip() else found  # type: ignore[return-value]


def normalise(text: str) -> str:
    """Lower case, punctuation and underscores to spaces (hyphens too: "over-sharpened"; the
    synthetic metadata's category keys: "contrast_weaken"), whitespace collapsed."""
    text = re.sub(r"[\W_]", " ", str(text).lower())
    return re.sub(r"\s+", " ", text).strip()


@lru_cache(maxsize=1)
def _compiled() -> list[tuple[re.Pattern[str], str]]:
    items = []
    for pattern, key in _PHRASES.items():
        for alt in pattern.split("|"):
            items.append((alt, _label(key)))
    for name, key in _exact_names().items():  # older labels ("Brighten") and keys read in sentences too
        items.append((re.escape(name), _label(key)))
    # longest alternative first, so specific phrases win over their sub-words
    items.sort(key=lambda kv: -len(kv[0]))
    return [(re.compile(rf"\b(?:{alt})\b"), cat) for alt, cat in items]


def canonical_label(label: str) -> str | None:
    """One label in any wording -> its category (or ``"None"``); ``None`` if unrecognised."""
    norm = normalise(label)
    if re.fullmatch(_CLEAN_PHRASES, norm):
        return CLEAN
    if exact_label(label) is not None:
        return exact_label(label)
    found = parse_labels(label)
    return next(iter(found)) if len(found) == 1 else None


def parse_labels(text: str) -> set[str]:
    """Every distortion category an answer names.

    Works for bare labels ("Blur and noise", "noise, blur") and for sentences. Returns
    ``{"None"}`` for a clean answer and ``set()`` when nothing is recognised.
    """
    norm = normalise(text)
    if not norm:
        return set()
    if re.fullmatch(_CLEAN_PHRASES, norm):
        return {CLEAN}
    taken = [False] * len(norm)  # characters already claimed by a longer phrase
    found: set[str] = set()
    for pattern, category in _compiled():
        for m in pattern.finditer(norm):
            if any(taken[m.start():m.end()]):
                continue
            taken[m.start():m.end()] = [True] * (m.end() - m.start())
            before = norm[:m.start()].split()[-3:]
            if not _NEGATIONS.intersection(before):
                found.add(category)
    if not found and re.search(rf"\b(?:{_CLEAN_PHRASES})\b", norm):
        return {CLEAN}
    return found


def labels_of(value: str | Iterable[str] | None) -> set[str]:
    """Ground-truth labels given as a string ("Blur and noise") or as a list of label names."""
    if value is None:
        return set()
    if isinstance(value, str):
        return parse_labels(value)
    out = {canonical_label(v) for v in value}
    out.discard(None)
    return out or {CLEAN}  # type: ignore[return-value]


_WIN = r"better|superior|higher|preferable|preferred|sharper|clearer|cleaner|best|wins|outperforms"
_LOSE = r"worse|inferior|lower|poorer|worst|more distorted|more degraded|less"
# "Image A" in any case; a bare capital letter only where it cannot be the article "A"
# (followed by a verb or punctuation, or after "than").
_WIN_RE = re.compile(rf"\b(?:{_WIN})\b", re.IGNORECASE)
_LOSE_RE = re.compile(rf"\b(?:{_LOSE})\b", re.IGNORECASE)
_MENTION = re.compile(r"\b[Ii]mage\s+([ABab])\b|\b([AB])(?=\s+(?:is|has|was|wins|shows|looks|appears|"
                      r"exhibits|seems|offers)\b|\s*[.,;!?]|\s*$)|(?<=than )([AB])\b")


def parse_choice(text: str) -> Literal["A", "B"] | None:
    """Which image an answer prefers: ``"A"``, ``"B"`` or ``None`` if it cannot be told.

    A bare answer ("Image A", "B") is read directly. In sentences the last sentence that judges
    (the conclusion, in DepictQA's detailed answers) decides: its first image mention is the
    subject; a word like "better" makes it the winner and one like "worse" makes the other win.
    """
    norm = normalise(text)
    bare = re.fullmatch(r"(?:image )?([ab])(?: is better)?", norm)
    if bare:
        return bare.group(1).upper()  # type: ignore[return-value]
    sentences = [s for s in re.split(r"(?<=[.!?;])\s+|\n+", str(text)) if s.strip()]
    for sentence in reversed(sentences):
        mentions = [((m.group(1) or m.group(2) or m.group(3)).upper(), m.end())
                    for m in _MENTION.finditer(sentence)]
        if not mentions:
            continue
        verdicts = [(m.start(), True) for m in _WIN_RE.finditer(sentence)]
        verdicts += [(m.start(), False) for m in _LOSE_RE.finditer(sentence)]
        if verdicts:
            # the last verdict is the conclusion; its subject is the nearest mention before it
            # ("Image B has more noise than Image A, so A is better" -> A)
            at, positive = max(verdicts)
            before = [letter for letter, end in mentions if end <= at]
            subject = before[-1] if before else mentions[0][0]
            if positive:
                return subject  # type: ignore[return-value]
            return "B" if subject == "A" else "A"
        if len({m[0] for m in mentions}) == 1 and len(sentences) == 1:
            return mentions[0][0]  # type: ignore[return-value]
    return None
