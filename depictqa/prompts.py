"""Prompt layouts: task kinds, image tags, templates -> token ids, image slots and a loss mask.

A prompt is a sequence of text pieces with image slots between them. Each text piece is tokenised
on its own (no special tokens), and every image slot is expanded to exactly as many positions as
the projector will produce for that image, so the model only has to scatter projected tokens into
``image_mask`` positions. Loss is on the answer only.

Templates (``TEMPLATES``):

- ``depictqa-vicuna``: the official DepictQA layout for Vicuna v1.5, token for token, so released
  DepictQA weights see the prompts they were trained on.
- ``compact``: the same structure without the system text; for tiny from-scratch models.
- ``chat``: the tokenizer's own chat template (``apply_chat_template``), for other LLM families.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from depictqa.data.schema import official_task, required_images

IGNORE = -100
SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
          "helpful, detailed, and polite answers to the human's questions.")
SYSTEM_QUALITY = " As an AI assistant, you are performing an image quality assessment task."
SYSTEM_REFERENCE = " A high-quality Reference Image is provided to assist the evaluation."
SINGLE_WORD = " Answer the question using a single word or phrase."

# image key -> (label, tag) in the prompt; an assess/caption image uses the generic tag.
IMAGE_LABELS = {"ref": ("Reference Image", "Img-Reference"), "a": ("Image A", "Img-A"),
                "b": ("Image B", "Img-B"), "single": ("Image", "Img")}


def system_text(task: str, reference: bool) -> str:
    text = SYSTEM
    if task != "caption":
        text += SYSTEM_QUALITY
        if reference:
            text += SYSTEM_REFERENCE
    return text


def image_slots(task: str, reference: bool) -> list[tuple[str, str, str]]:
    """``[(image key, label, tag)]`` in prompt order."""
    slots = []
    for key in required_images(task, reference):
        use = "single" if (task != "compare" and key != "ref") else key
        label, tag = IMAGE_LABELS[use]
        slots.append((key, label, tag))
    return slots


@dataclass
class Encoded:
    """One tokenised sample: ``input_ids``/``image_mask``/``labels`` are [L]."""

    input_ids: torch.Tensor
    image_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


class PromptBuilder:
    """Turns (task, reference, query, answer, image token counts) into an :class:`Encoded`."""

    def __init__(self, tokenizer: Any, template: str = "depictqa-vicuna") -> None:
        if template not in TEMPLATES:
            raise ValueError(f"unknown prompt template {template!r}; valid: {', '.join(TEMPLATES)}")
        self.tokenizer = tokenizer
        self.template = template
        self._cache: dict[str, list[int]] = {}

    def tokens(self, text: str) -> list[int]:
        if text not in self._cache:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(self._cache) < 4096:  # the fixed pieces repeat; queries and answers mostly do not
                self._cache[text] = ids
            return list(ids)
        return list(self._cache[text])

    def pieces(self, task: str, reference: bool, query: str, answer: str | None) -> tuple[list[str], str | None]:
        """Text pieces around the image slots (len = slots + 1) and the target text."""
        task, reference = _normalise(task, reference)
        slots = image_slots(task, reference)
        if self.template == "chat":
            return self._chat_pieces(task, reference, slots, query, answer)
        head = (system_text(task, reference) + "\n\n </s> ") if self.template == "depictqa-vicuna" else ""
        sep = "\n\n </s> " if self.template == "depictqa-vicuna" else "\n"
        pieces, prefix = [], head
        for _key, label, tag in slots:
            pieces.append(f"{prefix}{label}: <{tag}>")
            prefix = f"</{tag}>{sep}"
        if self.template == "depictqa-vicuna":
            pieces.append(f"{prefix}USER: {query}\n   ASSISTANT:")
            target = None if answer is None else f"{answer}\n </s>"
        else:
            pieces.append(f"{prefix}USER: {query}\nASSISTANT:")
            target = None if answer is None else f" {answer}</s>"
        return pieces, target

    def _chat_pieces(self, task: str, reference: bool, slots: list, query: str,
                     answer: str | None) -> tuple[list[str], str | None]:
        marks = [f"\x00IMAGE{i}\x00" for i in range(len(slots))]
        images = "".join(f"{label}: <{tag}>{mark}</{tag}>\n" for (_k, label, tag), mark in zip(slots, marks))
        messages = [{"role": "system", "content": system_text(task, reference)},
                    {"role": "user", "content": images + query}]
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        target = None
        if answer is not None:
            full = self.tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}],
                                                      tokenize=False)
            if not full.startswith(prompt):
                raise ValueError("the tokenizer's chat template does not extend the generation prompt "
                                 "with the answer; use template 'depictqa-vicuna' or 'compact'")
            target = full[len(prompt):]
        pieces = []
        for mark in marks:
            head, prompt = prompt.split(mark, 1)
            pieces.append(head)
        return pieces + [prompt], target

    def encode(self, task: str, reference: bool, query: str, answer: str | None,
               image_tokens: Sequence[int]) -> Encoded:
        """``image_tokens[i]``: how many projector tokens image ``i`` (prompt order) becomes."""
        pieces, target = self.pieces(task, reference, query, answer)
        if len(image_tokens) != len(pieces) - 1:
            raise ValueError(f"task {task!r} (reference={reference}) has {len(pieces) - 1} image slot(s), "
                             f"got {len(image_tokens)} image(s)")
        ids: list[int] = []
        if self.template != "chat" and self.tokenizer.bos_token_id is not None:
            ids.append(self.tokenizer.bos_token_id)
        is_image: list[bool] = [False] * len(ids)
        pad = self.tokenizer.pad_token_id or 0
        for i, piece in enumerate(pieces):
            piece_ids = self.tokens(piece)
            ids += piece_ids
            is_image += [False] * len(piece_ids)
            if i < len(image_tokens):
                ids += [pad] * image_tokens[i]
                is_image += [True] * image_tokens[i]
        labels = [IGNORE] * len(ids)
        if target is not None:
            target_ids = self.tokenizer(target, add_special_tokens=False)["input_ids"]
            ids += target_ids
            is_image += [False] * len(target_ids)
            labels += target_ids
        return Encoded(torch.tensor(ids, dtype=torch.long), torch.tensor(is_image, dtype=torch.bool),
                       torch.tensor(labels, dtype=torch.long))

    def fixed_texts(self) -> list[str]:
        """The template's own texts (for training a tokenizer that must cover them)."""
        texts = []
        for task, ref in (("assess", True), ("assess", False), ("compare", True), ("compare", False),
                          ("caption", False)):
            if self.template == "chat":
                continue
            texts += self.pieces(task, ref, "", "")[0]
        return texts


def _normalise(task: str, reference: bool) -> tuple[str, bool]:
    if task in ("assess", "compare", "caption"):
        return task, bool(reference) and task != "caption"
    return official_task(task)


TEMPLATES = ("depictqa-vicuna", "compact", "chat")
