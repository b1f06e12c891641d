"""Prompt layouts: templates -> token ids, image slots and a loss mask.

A prompt is a sequence of text pieces with image slots between them; which slots a task has, their
labels and tags come from the task table (:mod:`depictqa.tasks`). Each text piece is tokenised
on its own (no special tokens), and every image slot is expanded to exactly as many positions as
the projector will produce for that image, so the model only has to scatter projected tokens into
``image_mask`` positions. Loss is on the answer only.

Templates (``TEMPLATES``):

- ``depictqa-vicuna``: the official DepictQA layout for Vicuna v1.5, token for token (system texts,
  separators, the trailing space of ``"ASSISTANT: "``, the description task's own layout), so
  released DepictQA weights see the prompts they were trained on.
- ``compact``: the same structure without the system text; for tiny from-scratch models.
- ``chat``: the tokenizer's own chat template (``apply_chat_template``), for other LLM families.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from depictqa.tasks import TABLE, TaskSpec, spec

IGNORE = -100
SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
          "helpful, detailed, and polite answers to the human's questions.")
SYSTEM_QUALITY = " As an AI assistant, you are performing an image quality assessment task."
SYSTEM_REFERENCE = " A high-quality Reference Image is provided to assist the evaluation."
SYSTEM_DESCRIPTION = (" As an AI assistant, you are performing an image detail description task, and your goal is to "
                      "generate a natural language description of an image that accurately and comprehensively "
                      "conveys its visual content.")
SINGLE_WORD = " Answer the question using a single word or phrase."

TEMPLATES = ("depictqa-vicuna", "compact", "chat")


def system_text(task: TaskSpec) -> str:
    if not task.quality:
        return SYSTEM + SYSTEM_DESCRIPTION
    return SYSTEM + SYSTEM_QUALITY + (SYSTEM_REFERENCE if task.reference else "")


def strip_image_marker(query: str) -> str:
    """The query without the ``<image>`` placeholder (and the newline beside it) that official
    description data carries: the image has its own slot."""
    return query.replace("<image>\n", "").replace("\n<image>", "").replace("<image>", "")


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

    def pieces(self, task: str | TaskSpec, reference: bool, query: str,
               answer: str | None) -> tuple[list[str], str | None]:
        """Text pieces around the image slots (len = slots + 1) and the target text. ``task``: a
        row of the task table, or a name :func:`depictqa.tasks.spec` resolves with ``reference``."""
        task = spec(task, reference)
        if self.template == "chat":
            return self._chat_pieces(task, query, answer)
        head = (system_text(task) + "\n\n </s> ") if self.template == "depictqa-vicuna" else ""
        sep = "\n\n </s> " if self.template == "depictqa-vicuna" else "\n"
        if self.template == "depictqa-vicuna" and not task.quality:
            # the official description layout: the image inside the user turn
            tag = task.slots[0].tag
            pieces = [f"{head}USER: <{tag}>", f"</{tag}> {strip_image_marker(query)}   ASSISTANT: "]
            return pieces, None if answer is None else f"{answer}\n </s>"
        pieces, prefix = [], head
        for slot in task.slots:
            pieces.append(f"{prefix}{slot.label}: <{slot.tag}>")
            prefix = f"</{slot.tag}>{sep}"
        if self.template == "depictqa-vicuna":
            # "ASSISTANT: " with its trailing space, as the released models were trained (with the
            # LLaMA tokenizer the space is its own token right before the answer)
            pieces.append(f"{prefix}USER: {query}\n   ASSISTANT: ")
            target = None if answer is None else f"{answer}\n </s>"
        else:
            pieces.append(f"{prefix}USER: {query}\nASSISTANT:")
            target = None if answer is None else f" {answer}</s>"
        return pieces, target

    def _chat_pieces(self, task: TaskSpec, query: str, answer: str | None) -> tuple[list[str], str | None]:
        marks = [f"\x00IMAGE{i}\x00" for i in range(len(task.slots))]
        images = "".join(f"{s.label}: <{s.tag}>{mark}</{s.tag}>\n" for s, mark in zip(task.slots, marks))
        messages = [{"role": "system", "content": system_text(task)},
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

    def answer_ids(self, answer: str) -> list[int]:
        """The target ids of ``answer`` as a training sample holds them (its end mark included).
        Every task ends an answer alike, so any row of the task table gives them."""
        task = next(iter(TABLE.values()))
        target = self.pieces(task, task.reference, "", answer)[1]
        return list(self.tokenizer(target, add_special_tokens=False)["input_ids"])

    def later_turn(self, query: str, answer: str) -> tuple[str, str]:
        """A turn after the first: (prompt text, target text); no system text or images again."""
        if self.template == "depictqa-vicuna":
            return f"USER: {query}\n   ASSISTANT: ", f"{answer}\n </s>"
        if self.template == "compact":
            return f"USER: {query}\nASSISTANT:", f" {answer}</s>"
        raise ValueError(f"prompt template {self.template!r} has no multi-turn layout; use 'depictqa-vicuna' or "
                         "'compact' for conversations with more than one turn")

    def encode(self, task: str | TaskSpec, reference: bool, query: str, answer: str | None,
               image_tokens: Sequence[int], later: Sequence[tuple[str, str]] = ()) -> Encoded:
        """``image_tokens[i]``: how many projector tokens image ``i`` (prompt order) becomes;
        ``later``: (question, answer) turns after the first, each answer a training target too."""
        pieces, target = self.pieces(task, reference, query, answer)
        if len(image_tokens) != len(pieces) - 1:
            raise ValueError(f"task {spec(task, reference).official!r} has {len(pieces) - 1} image slot(s), "
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
        for question, reply in later:
            prompt_text, target_text = self.later_turn(question, reply)
            prompt_ids = self.tokens(prompt_text)
            target_ids = self.tokenizer(target_text, add_special_tokens=False)["input_ids"]
            ids += prompt_ids + target_ids
            is_image += [False] * (len(prompt_ids) + len(target_ids))
            labels += [IGNORE] * len(prompt_ids) + target_ids
        return Encoded(torch.tensor(ids, dtype=torch.long), torch.tensor(is_image, dtype=torch.bool),
                       torch.tensor(labels, dtype=torch.long))

    def fixed_texts(self) -> list[str]:
        """The template's own texts (for training a tokenizer that must cover them)."""
        texts = []
        if self.template == "chat":
            return texts
        for task in TABLE.values():
            texts += self.pieces(task, task.reference, "", "")[0]
        return texts
