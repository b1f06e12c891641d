"""Question pools per task and style, full-reference (FR) and no-reference (NR).

A question is the human turn's text only (the prompt builder adds the images). `single`
questions end with :data:`SINGLE_SUFFIX`, the official convention for a bare-label answer.
"""

from __future__ import annotations

import numpy as np

SINGLE_SUFFIX = " Answer the question using a single word or phrase."

_ASSESS_SINGLE = {
    False: ["What is the distortion type of this image?", "Which distortion does this image have?",
            "What kind of degradation affects this image?", "Name the distortion in this image.",
            "What distortions, if any, can be seen in this image?"],
    True: ["Compared with the reference image, what is the distortion type of the image?",
           "Using the reference image, identify the distortion in the evaluated image.",
           "What distortion does the image have relative to the reference image?",
           "Given the reference, which degradation has been applied to the image?"],
}
_ASSESS_BRIEF = {
    False: ["What distortions does this image have?", "Briefly describe the quality problems of this image.",
            "Is there any distortion in this image? Answer briefly.", "Identify the degradations in this image.",
            "What is wrong with the quality of this image, if anything?",
            "Describe the distortion of this image in one sentence."],
    True: ["Compared with the reference image, what distortions does the image have?",
           "Using the reference image, briefly describe the image's distortions.",
           "How does the image differ in quality from the reference? Answer briefly.",
           "With the reference as a guide, identify the degradations of the image."],
}
_ASSESS_DETAIL = {
    False: ["Describe the quality of this image in detail.", "Evaluate this image's quality and explain your reasoning.",
            "Give a detailed assessment of the distortions in this image and their impact.",
            "What are the distortions of this image, how severe are they, and how do they affect it?"],
    True: ["Compared with the reference image, evaluate the image's quality in detail.",
           "Using the reference image, describe the image's distortions and their impact in detail.",
           "Give a detailed quality assessment of the image relative to the reference image."],
}
_COMPARE_SINGLE = {
    False: ["Which image is better, Image A or Image B?", "Which of the two images has higher quality?",
            "Which image has better quality?", "Between Image A and Image B, which looks better?"],
    True: ["Compared with the reference image, which image is better, Image A or Image B?",
           "Using the reference image, which of Image A and Image B has higher quality?",
           "Which image is closer in quality to the reference, Image A or Image B?"],
}
_COMPARE_BRIEF = {
    False: ["Which image is better, Image A or Image B? Answer briefly with a reason.",
            "Compare the quality of Image A and Image B briefly.",
            "Which of the two images has higher quality, and why? Keep it short."],
    True: ["Compared with the reference image, which of Image A and Image B is better? Answer briefly.",
           "Using the reference image, briefly compare the quality of Image A and Image B.",
           "Relative to the reference, which image has higher quality and why? Keep it short."],
}
_COMPARE_DETAIL = {
    False: ["Compare the quality of Image A and Image B in detail.",
            "Evaluate and compare the distortions of Image A and Image B, then say which is better.",
            "Which image is better? Explain the distortions of both images in detail."],
    True: ["Compared with the reference image, evaluate Image A and Image B in detail and say which is better.",
           "Using the reference image, compare the distortions of Image A and Image B in detail.",
           "Relative to the reference, analyse both images' quality in detail and pick the better one."],
}
_LEVEL = {
    False: ["How would you rate the quality of this image?", "What is the overall quality level of this image?",
            "Rate this image's quality as excellent, good, fair, poor or bad."],
    True: ["Compared with the reference image, how would you rate the quality of the image?",
           "Using the reference image, rate the image's quality as excellent, good, fair, poor or bad."],
}
_CAPTION = ["Describe the content of this image.", "What does this image show?",
            "Write a short caption for this image.", "Briefly describe what is in the picture."]

POOLS = {("assess", "single"): _ASSESS_SINGLE, ("assess", "brief"): _ASSESS_BRIEF,
         ("assess", "detail"): _ASSESS_DETAIL, ("assess", "level"): _LEVEL,
         ("compare", "single"): _COMPARE_SINGLE, ("compare", "brief"): _COMPARE_BRIEF,
         ("compare", "detail"): _COMPARE_DETAIL}


def question(task: str, style: str, reference: bool, rng: np.random.Generator) -> str:
    """One question for (task, style, FR/NR); `single` and `level` get the single-word suffix."""
    if task == "caption":
        return str(rng.choice(_CAPTION))
    if (task, style) not in POOLS:
        raise KeyError(f"no questions for {(task, style)}; valid: {sorted(POOLS)}")
    q = str(rng.choice(POOLS[(task, style)][reference]))
    return q + SINGLE_SUFFIX if style in ("single", "level") else q
