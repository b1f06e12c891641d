"""Questions from a small compositional grammar, with a held-out family of phrasings.

A question is a framing template (one per way of asking) filled from word lists — the image
(*this picture*), the defect noun (*artifact*, *quality issue*), the A/B pair, what "better" means,
a lead-in and a closing courtesy — and, with a reference, a reference clause put before or after
the question (word order). Each (task, style) kind yields well over 500 distinct phrasings
(:func:`phrasings`).

``family="heldout"`` draws from framings *and* synonyms that the training family never uses; it
exists only to measure how a model does on phrasings it never saw (the demo's "unseen phrasing"
rows). `single` and `level` questions end with :data:`SINGLE_SUFFIX`, the official convention for a
bare-label answer, in both families. Captions keep a small fixed pool.
"""

from __future__ import annotations

import itertools
import re
from typing import Iterator

import numpy as np

SINGLE_SUFFIX = " Answer the question using a single word or phrase."
FAMILIES = ("train", "heldout")

# word lists: the training family's, and the synonyms only the held-out family uses
WORDS = {
    "img": (["this image", "the image", "this picture", "this photo"], ["this shot", "the frame"]),
    "noun": (["distortion", "degradation", "defect", "problem", "artifact", "quality issue", "impairment"],
             ["blemish", "corruption", "flaw"]),
    "nouns": (["distortions", "degradations", "defects", "problems", "artifacts", "quality issues", "impairments"],
              ["blemishes", "corruptions", "flaws"]),
    "ab": (["Image A and Image B", "the two images", "these two images"], ["this pair of images", "the pair of pictures"]),
    "better": (["better", "of higher quality", "visually superior", "preferable"], ["more pleasing", "cleaner"]),
    "quality": (["quality", "visual quality", "perceived quality", "image quality"], ["overall look", "fidelity"]),
    "lead": (["", "Quick question: ", "I need your opinion. ", "Hello! ", "Hi. ", "Question: ", "Please help me. "],
             ["Hey there, ", "One more thing: "]),
    "pol": (["", " Please answer.", " Thank you.", " Thanks.", " Please be precise.", " No rush.", " Answer carefully."],
            [" Much appreciated.", " Kindly respond."]),
    "ref": (["compared with the reference image", "relative to the reference", "judging against the reference image",
             "using the reference as a guide", "given the reference image", "in light of the reference"],
            ["taking the pristine original into account", "with the original as a baseline"]),
}

# framing templates per (task, style): (training family, held-out family)
FRAMINGS: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("assess", "single"): (
        ["What {noun} does {img} have?", "Which {noun} is present in {img}?", "Name the {noun} in {img}.",
         "What kind of {noun} affects {img}?", "Identify the {noun} of {img}.", "What is the main {noun} of {img}?",
         "Could you tell me which {noun} {img} shows?", "I would like to know the {noun} in {img}.",
         "What {noun} do you see in {img}?", "Which {noun} degrades {img}?", "Point out the {noun} in {img}.",
         "Please determine the {noun} present in {img}.", "What {noun} can be found in {img}?",
         "Is {img} affected by a {noun}? Name it.", "Look at {img}: what {noun} does it have?",
         "Tell me what {noun} {img} has.", "Of all possible {nouns}, which one does {img} show?"],
        ["Can you spot a {noun} in {img}? Which one?", "Tell me the type of {noun} that {img} suffers from."]),
    ("assess", "brief"): (
        ["What {nouns} does {img} have?", "Briefly describe the {nouns} of {img}.",
         "Is there any {noun} in {img}? Answer briefly.", "Describe the {noun} in {img} in one sentence.",
         "What is wrong with the {quality} of {img}, if anything?"],
        ["In a sentence, what {nouns} can you notice in {img}?", "Sum up the {nouns} of {img} briefly."]),
    ("assess", "detail"): (
        ["Describe the {quality} of {img} in detail.", "Evaluate {img} and explain its {nouns} and their impact.",
         "Give a detailed assessment of the {nouns} in {img}.",
         "What {nouns} does {img} have, how severe are they, and how do they affect it?"],
        ["Walk me through the {nouns} of {img} thoroughly.", "Provide an in-depth analysis of the {nouns} of {img}."]),
    ("assess", "level"): (
        ["How would you rate the {quality} of {img}?", "What is the overall {quality} level of {img}?",
         "Rate the {quality} of {img} as excellent, good, fair, poor or bad.", "How good is the {quality} of {img}?",
         "Could you rate the {quality} of {img}?", "What {quality} level would you give {img}?"],
        ["On a scale from bad to excellent, where does the {quality} of {img} sit?",
         "Grade the {quality} of {img}."]),
    ("compare", "single"): (
        ["Which image is {better}, Image A or Image B?", "Which of {ab} is {better}?",
         "Between {ab}, which one is {better}?", "Which image has fewer {nouns}, Image A or Image B?",
         "Is Image A or Image B {better}?", "Tell me which of {ab} is {better}.", "Which one of {ab} looks {better}?",
         "Could you say which of {ab} is {better}?", "Decide which of {ab} is {better}.",
         "Which image would you call {better}, Image A or Image B?", "Comparing {ab}, which is {better}?",
         "Which image shows fewer {nouns}: Image A or Image B?", "Look at {ab}: which is {better}?",
         "Of {ab}, which would you say is {better}?", "Please judge which of {ab} is {better}.",
         "Image A or Image B: which is {better}?", "I am comparing {ab}. Which one is {better}?",
         "Given {ab}, which do you find {better}?"],
        ["If you had to keep only one of {ab}, which is {better}?", "Which one would you pick as {better}: Image A or Image B?"]),
    ("compare", "brief"): (
        ["Which image is {better}, Image A or Image B? Answer briefly with a reason.",
         "Briefly compare the {nouns} of {ab}.", "Which of {ab} is {better}, and why? Keep it short."],
        ["In one sentence, tell me which of {ab} is {better} and why.", "Quickly judge {ab}: which is {better}?"]),
    ("compare", "detail"): (
        ["Compare the {quality} of {ab} in detail.",
         "Evaluate the {nouns} of {ab} in detail, then say which is {better}.",
         "Which image is {better}? Explain the {nouns} of both images in detail."],
        ["Give a thorough side-by-side analysis of {ab} and name the {better} one.",
         "Discuss at length how {ab} differ in {nouns}, and conclude which is {better}."]),
}
POOLS = FRAMINGS  # the kinds there are questions for
_CAPTION = ["Describe the content of this image.", "What does this image show?",
            "Write a short caption for this image.", "Briefly describe what is in the picture."]
_SLOT = re.compile(r"\{(\w+)\}")


def _words(slot: str, family: str) -> list[str]:
    train, heldout = WORDS[slot]
    return list(train) if family == "train" else list(train) + list(heldout)


def _compose(core: str, lead: str, pol: str, ref: str | None, ref_first: bool) -> str:
    if ref is not None:
        if ref_first:
            core = f"{ref[0].upper()}{ref[1:]}, {core[0].lower()}{core[1:]}"
        else:
            core = f"{core[:-1]}, {ref}{core[-1]}"
    if lead:
        core = lead + (core if lead.endswith((". ", "! ")) else core[0].lower() + core[1:])
    return core + pol


def _fill(template: str, choose) -> str:
    return _SLOT.sub(lambda m: choose(m.group(1)), template)


def question(task: str, style: str, reference: bool, rng: np.random.Generator, family: str = "train") -> str:
    """One question for (task, style, FR/NR) from ``family`` (``"train"`` or ``"heldout"``)."""
    if family not in FAMILIES:
        raise ValueError(f"question family {family!r}: expected one of {', '.join(FAMILIES)}")
    if task == "caption":
        return str(rng.choice(_CAPTION))
    if (task, style) not in FRAMINGS:
        raise KeyError(f"no questions for {(task, style)}; valid: {sorted(FRAMINGS)}")
    framings = FRAMINGS[(task, style)][0 if family == "train" else 1]
    template = str(rng.choice(framings))
    core = _fill(template, lambda slot: str(rng.choice(_words(slot, family))))
    ref = str(rng.choice(_words("ref", family))) if reference else None
    q = _compose(core, str(rng.choice(_words("lead", family))), str(rng.choice(_words("pol", family))), ref,
                 bool(rng.integers(2)))
    return q + SINGLE_SUFFIX if style in ("single", "level") else q


def phrasings(task: str, style: str, reference: bool, family: str = "train") -> Iterator[str]:
    """Every phrasing the family can produce for a kind (without the single-word suffix)."""
    framings = FRAMINGS[(task, style)][0 if family == "train" else 1]
    refs = _words("ref", family) if reference else [None]
    for template in framings:
        slots = sorted(set(_SLOT.findall(template)))
        for values in itertools.product(*(_words(s, family) for s in slots)):
            core = _fill(template, dict(zip(slots, values)).__getitem__)
            for lead, pol, ref, first in itertools.product(_words("lead", family), _words("pol", family), refs,
                                                           (True, False)):
                if ref is None and not first:
                    continue
                yield _compose(core, lead, pol, ref, first)
