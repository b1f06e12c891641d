"""Answer text written from ground truth: labels, brief sentences, detail paragraphs, levels.

Every sentence is filled from the distortion records (``{"category", "subtype", "severity"}``)
and the quality model in :mod:`depictqa.synth.quality`, never from an image, so it cannot
disagree with its label. FR wording mentions the reference; NR wording does not.
Parsers (:func:`~depictqa.synth.quality.parse_phrases`, :func:`parse_winner`) invert the text.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

import numpy as np

from depictqa.synth.distortions import CATEGORIES, SEVERITY_WORDS
from depictqa.synth.quality import dominant, label, level, quality

# What each category visibly does (detail paragraphs); sub-types may override.
EFFECTS = {
    "blur": "softens edges and wipes out fine texture", "noise": "scatters random grain over flat regions",
    "compression": "adds blocky patches and ringing around edges",
    "brighten": "washes out highlights and flattens bright areas", "darken": "hides details in the shadows",
    "contrast_strengthen": "clips dark and bright areas and exaggerates tonal steps",
    "contrast_weaken": "makes the image look flat and hazy",
    "saturate_strengthen": "makes colors look garish and unnatural", "saturate_weaken": "drains the colors toward grey",
    "oversharpen": "creates bright halos along edges", "pixelate": "replaces detail with visible square blocks",
    "quantization": "turns smooth gradients into flat bands of color",
}
SUB_EFFECTS = {"blur.motion": "smears edges along one direction", "blur.zoom": "streaks details radially from the center",
               "noise.impulse": "sprinkles isolated black and white dots", "blur.glass": "makes the scene look as if seen through frosted glass"}

_ONE_NR = ["The image suffers from {sev} {p}.", "The main distortion in this image is {p}.",
           "This image is degraded by {sev} {p}.", "The most noticeable problem here is {sev} {p}.",
           "There is {sev} {p} in the image.", "The image shows {p}."]
_ONE_FR = ["Compared with the reference, the image suffers from {sev} {p}.",
           "Relative to the reference image, the image is degraded by {p}.",
           "Unlike the reference, this image shows {sev} {p}.",
           "Against the reference image, the main distortion is {sev} {p}."]
_TWO_NR = ["The image suffers from {p1} and {p2}.", "This image is degraded by both {p1} and {p2}.",
           "Two distortions are visible: {p1} and {p2}.", "The image shows {p1} together with {p2}."]
_TWO_FR = ["Compared with the reference, the image suffers from {p1} and {p2}.",
           "Relative to the reference image, two distortions appear: {p1} and {p2}.",
           "Unlike the reference, the image is degraded by both {p1} and {p2}."]
_CLEAN_NR = ["The image shows no obvious distortion.", "This image looks clean, without visible degradation.",
             "No distortion can be seen; the image quality is high."]
_CLEAN_FR = ["Compared with the reference, the image shows no visible distortion.",
             "The image matches the reference closely and has no visible degradation."]
_WIN = ["Image {w} is better than Image {l}", "Image {w} has higher quality than Image {l}",
        "Of the two, Image {w} looks better", "Image {w} is of higher quality than Image {l}"]
_WINNER_RE = re.compile(r"Image ([AB]) (?:is better|has higher quality|looks better|is of higher quality)")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def phrase(d: dict) -> str:
    return CATEGORIES[d["category"]][1]


def describe(distortions: list[dict], with_severity: bool = True) -> str:
    """"moderate blur and slight noise" / "no visible distortion"."""
    if not distortions:
        return "no visible distortion"
    parts = [(SEVERITY_WORDS[d["severity"]] + " " if with_severity else "") + phrase(d) for d in distortions]
    return " and ".join(parts)


def assess_brief(distortions: list[dict], reference: bool, rng: np.random.Generator) -> str:
    """One sentence naming every distortion (phrases parse back to categories)."""
    if not distortions:
        return str(rng.choice(_CLEAN_FR if reference else _CLEAN_NR))
    if len(distortions) == 1:
        d = distortions[0]
        t = str(rng.choice(_ONE_FR if reference else _ONE_NR))
        return t.format(sev=SEVERITY_WORDS[d["severity"]], p=phrase(d))
    t = str(rng.choice(_TWO_FR if reference else _TWO_NR))
    return t.format(p1=phrase(distortions[0]), p2=phrase(distortions[1]))


def assess_detail(distortions: list[dict], reference: bool, rng: np.random.Generator,
                  caption: str | None = None) -> str:
    """Content sentence, one sentence per distortion (severity word + effect), conclusion."""
    out = []
    if caption:
        out.append(f"The image shows {caption.rstrip('.')}.")
    if not distortions:
        out.append(str(rng.choice(_CLEAN_FR if reference else _CLEAN_NR)))
    lead = "Compared with the reference image, the image" if reference else "The image"
    for i, d in enumerate(distortions):
        effect = SUB_EFFECTS.get(f"{d['category']}.{d['subtype']}", EFFECTS[d["category"]])
        who = lead if i == 0 else "It also"
        out.append(f"{who} has {SEVERITY_WORDS[d['severity']]} {phrase(d)}, which {effect}.")
    q = quality(distortions)
    out.append(f"Overall, the quality of the image is {level(q)}.")
    return " ".join(out)


def level_answer(distortions: list[dict]) -> str:
    return level(quality(distortions))


def _reason(loser: str, d_loser: list[dict], winner: str, d_winner: list[dict]) -> str:
    worst = dominant(d_loser)
    if not d_winner:
        return f"Image {loser} suffers from {SEVERITY_WORDS[worst['severity']]} {phrase(worst)}, while Image {winner} looks clean"
    return f"Image {loser} is more heavily degraded, mainly by {SEVERITY_WORDS[worst['severity']]} {phrase(worst)}"


def compare_brief(dist_a: list[dict], dist_b: list[dict], a_better: bool, reference: bool,
                  rng: np.random.Generator) -> str:
    """Winner first (parsable by :func:`parse_winner`), then one reason from the loser's damage."""
    w, l_ = ("A", "B") if a_better else ("B", "A")
    dw, dl = (dist_a, dist_b) if a_better else (dist_b, dist_a)
    head = str(rng.choice(_WIN)).format(w=w, l=l_)
    if reference:
        head = head + " when both are compared with the reference"
    return f"{head}, because {_reason(l_, dl, w, dw)}."


def compare_detail(dist_a: list[dict], dist_b: list[dict], a_better: bool, reference: bool,
                   rng: np.random.Generator, caption: str | None = None) -> str:
    """Describe A, describe B, then conclude with the winner of the quality model."""
    out = [f"Both images show {caption.rstrip('.')}."] if caption else []
    ref = "Compared with the reference image, " if reference else ""
    for name, dist in (("A", dist_a), ("B", dist_b)):
        if dist:
            effects = "; ".join(f"its {phrase(d)} {EFFECTS[d['category']]}" for d in dist)
            out.append(f"{_cap(ref + f'Image {name}')} has {describe(dist)}: {effects}.")
        else:
            out.append(f"{_cap(ref + f'Image {name}')} shows no visible distortion.")
        ref = ""
    w = "A" if a_better else "B"
    qa, qb = quality(dist_a), quality(dist_b)
    out.append(f"The quality of Image A is {level(qa)} and that of Image B is {level(qb)}.")
    out.append(f"Therefore, Image {w} is better overall.")
    return " ".join(out)


def parse_winner(text: str) -> str | None:
    """"A" / "B" from a `single`, brief or detail compare answer (last verdict wins)."""
    text = text.strip().rstrip(".")
    if text in ("Image A", "Image B"):
        return text[-1]
    hits = _WINNER_RE.findall(text)
    return hits[-1] if hits else None


def ngram_counts(texts: Iterable[str], n_max: int = 4) -> dict[int, int]:
    """Number of distinct word n-grams (n = 1..n_max) over ``texts``: a diversity measure."""
    seen: dict[int, Counter] = {n: Counter() for n in range(1, n_max + 1)}
    for t in texts:
        words = re.findall(r"[a-z']+", t.lower())
        for n in seen:
            seen[n].update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return {n: len(c) for n, c in seen.items()}


__all__ = ["assess_brief", "assess_detail", "compare_brief", "compare_detail", "level_answer",
           "parse_winner", "ngram_counts", "label", "describe"]
