"""Assessor: the inference API -- assess, compare, describe (generation) and score, prefer (one
forward pass each), with confidence, over single inputs or lists processed in batches.

Batches are left-padded prompt batches (:mod:`depictqa.infer.batching`); greedy results of a batch
equal those of one request at a time. An image that cannot be read gives a result with ``error``
set instead of stopping the whole list.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from PIL import Image

from depictqa.data.images import ImageConfig, ImageError
from depictqa.infer import confidence as C
from depictqa.infer.batching import Prepared, Request, collate_left, last_token_logits, prepare
from depictqa.infer.heads import ChoiceHead, choice_head, letter_ids
from depictqa.infer.results import LEVELS, Answer, Preference, Score, default_query

R = TypeVar("R")
_SINGLE_TYPES = (str, bytes, bytearray, os.PathLike, Image.Image, np.ndarray)


def image_config(model: Any, recipe: Any = None) -> ImageConfig:
    """Inference geometry: the recipe's ``data.image`` sizes (no training crop), the encoder's mean/std."""
    enc = model.encoder
    cfg = ImageConfig(mean=tuple(getattr(enc, "mean", ImageConfig.mean)),
                      std=tuple(getattr(enc, "std", ImageConfig.std)), uint8=True)
    block = recipe.get("data", {}).get("image", {}) if recipe is not None else {}
    for key in ("short_side", "max_long_side", "min_size", "max_pixels", "pad", "pad_align"):
        if block.get(key) is not None:
            setattr(cfg, key, block[key])
    return cfg


def _as_list(x: Any) -> tuple[list[Any], bool]:
    """(items, was a single item): one image is a path, bytes, PIL image or array."""
    if x is None or isinstance(x, _SINGLE_TYPES):
        return [x], True
    return list(x), False


def _broadcast(x: Any, n: int, what: str) -> list[Any]:
    items, single = _as_list(x)
    if single:
        return items * n
    if len(items) != n:
        raise ValueError(f"{what}: got {len(items)} images for {n} inputs")
    return items


class Assessor:
    """Descriptive IQA with a :class:`~depictqa.model.DepictQAModel`.

    ``image_cfg``: encoder input geometry (default: 224/672/70 with the encoder's mean/std; use
    :meth:`from_pretrained` to take the checkpoint recipe's). ``batch_size``: requests per batch.
    """

    def __init__(self, model: Any, image_cfg: ImageConfig | None = None, batch_size: int = 8,
                 device: str | torch.device | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.image_cfg = image_cfg or image_config(model)
        self.batch_size = batch_size
        self.tokenizer = model.tokenizer
        self._letters = letter_ids(self.tokenizer)
        self._heads: dict[tuple[Any, ...], ChoiceHead] = {}
        self._stop = {t for t in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id) if t is not None}
        self._memo: _FeatureMemo | None = None

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device | None = None,
                        batch_size: int = 8, trust_remote_code: bool = False) -> "Assessor":
        """Load a checkpoint directory (safetensors + JSON only) with its recipe's image geometry
        (``trust_remote_code``: see :func:`depictqa.checkpoint.load_pretrained`)."""
        from depictqa.checkpoint import load_pretrained, recipe_of

        model = load_pretrained(directory, device=device, trust_remote_code=trust_remote_code)
        return cls(model, image_config(model, recipe_of(directory)), batch_size, device)

    @contextlib.contextmanager
    def sharing_image_features(self) -> Iterator[None]:
        """Inside, an image (by pixel content) is run through the encoder and projector once,
        however many calls ask about it: ``depictqa serve`` answers a comparison and its P(A better)
        this way. Each image is encoded on its own, so these are the image tokens either call would
        compute (up to float rounding); they are forgotten on leaving. A no-op for a model whose
        image tokens depend on the other images of the sample (conditioners) or that is training."""
        model = self.model
        if self._memo is not None or len(getattr(model, "conditioners", ())) or model.training:
            yield
            return
        memo = self._memo = _FeatureMemo(model.encode_images)
        model.encode_images = memo  # an instance attribute: the class's method is untouched
        try:
            yield
        finally:
            del model.encode_images
            self._memo = None

    # ---- generation --------------------------------------------------------------------------
    def assess(self, image: Any, reference: Any = None, style: str = "brief", query: str | None = None,
               **generation: Any) -> Any:
        """What is wrong with ``image`` (FR when ``reference`` is given). One input -> :class:`Answer`,
        a list -> list of them."""
        images, single = _as_list(image)
        refs = _broadcast(reference, len(images), "reference")
        reqs = [self._request("assess", {"ref": r, "a": im}, style, query) for im, r in zip(images, refs)]
        out = self.answer(reqs, style, **generation)
        return out[0] if single else out

    def compare(self, image_a: Any, image_b: Any, reference: Any = None, style: str = "brief",
                query: str | None = None, **generation: Any) -> Any:
        """Which of ``image_a``/``image_b`` is better, and why (style)."""
        a, single = _as_list(image_a)
        b = _broadcast(image_b, len(a), "image_b")
        refs = _broadcast(reference, len(a), "reference")
        reqs = [self._request("compare", {"ref": r, "a": x, "b": y}, style, query) for x, y, r in zip(a, b, refs)]
        out = self.answer(reqs, style, **generation)
        return out[0] if single else out

    def describe(self, image: Any, query: str | None = None, **generation: Any) -> Any:
        """Content caption (the official ``description`` task)."""
        images, single = _as_list(image)
        out = self.answer([self._request("caption", {"img": im}, "brief", query) for im in images], "brief", **generation)
        return out[0] if single else out

    def _request(self, task: str, images: dict[str, Any], style: str, query: str | None) -> Request:
        reference = images.get("ref") is not None
        return Request(task, reference, query or default_query(task, style, reference),
                       {k: v for k, v in images.items() if v is not None})

    def answer(self, requests: Sequence[Request], style: str = "brief", max_new_tokens: int = 256,
               temperature: float | None = None, top_p: float | None = None, **generate: Any) -> list[Answer]:
        """Generate for :class:`Request` s (greedy unless ``temperature`` is given); ``generate``:
        further ``transformers`` generation options (``repetition_penalty``, ``sequence_bias`` ...)."""
        sampling: dict[str, Any] = dict(generate)
        if temperature:
            sampling.update(do_sample=True, temperature=temperature, top_p=top_p or 1.0)
        return self._run(requests, lambda ps: self._generate(ps, style, max_new_tokens, sampling),
                         lambda req, err: Answer(task=req.spec.official, error=err, style=style))

    def _generate(self, prepared: list[Prepared], style: str, max_new_tokens: int,
                  sampling: dict[str, Any]) -> list[Answer]:
        batch = collate_left(prepared, self.tokenizer.pad_token_id or 0).to(self.device)
        out = self.model.generate(batch, max_new_tokens=max_new_tokens, output_logits=True,
                                  return_dict_in_generate=True, use_cache=True, **sampling)
        seqs = out.sequences.cpu()
        letter_list = list(self._letters)
        # Raw (unprocessed) logits of the SAME generation: the model's own probabilities, also
        # when sampling warps the distribution it drew from.
        chosen, letters = [], []
        for step, logits in enumerate(out.logits):
            p = logits.float().softmax(-1).cpu()
            chosen.append(p.gather(1, seqs[:, step:step + 1]).squeeze(1))
            letters.append(p[:, letter_list] if letter_list else p[:, :0])
        chosen_p, letter_p = torch.stack(chosen, 1), torch.stack(letters, 1)
        results, detail = [], []
        for r, prep in enumerate(prepared):
            ids = seqs[r].tolist()
            n = self._answer_length(ids)
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=True).strip()
            res = Answer(task=prep.request.spec.official, text=text, style=style,
                         num_tokens=n)
            if not C.is_brief(text):
                detail.append((r, res))
            elif (prep.request.spec.kind == "compare"
                  and (pos := C.letter_position(ids[:n], self._letters, self._decode)) is not None):
                probs = {"A": 0.0, "B": 0.0}
                for j, tok in enumerate(letter_list):
                    probs[self._letters[tok]] += float(letter_p[r, pos, j])
                res.probabilities, res.choice = probs, self._letters[ids[pos]]
                res.confidence = float(chosen_p[r, pos])
            else:
                res.confidence = C.mean_probability(chosen_p[r, :n].tolist())
            results.append(res)
        if detail:
            confs = C.detail_confidences([res.text or "" for _, res in detail],
                                         [seqs[r, :res.num_tokens].tolist() for r, res in detail],
                                         [chosen_p[r, :res.num_tokens] for r, res in detail], self._decode,
                                         device=self.device)
            for (_, res), conf in zip(detail, confs):
                res.confidence = conf
        return results

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _answer_length(self, ids: list[int]) -> int:
        # Up to EOS/padding, minus trailing whitespace-only tokens (the official template ends an
        # answer with "\n </s>"): they carry no content and would inflate the mean probability.
        n = C.answer_length(ids, self._stop)
        while n > 0 and not self._decode(ids[n - 1:n]).strip():
            n -= 1
        return n

    # ---- one forward pass ----------------------------------------------------------------------
    def score(self, images: Any, reference: Any = None, query: str | None = None,
              answer_template: str = "{level}") -> Any:
        """Q-Align-style quality in [1, 5]: expectation of weights 5..1 under the softmax over the
        first distinguishing tokens of excellent/good/fair/poor/bad after the rating question.

        ``answer_template``: how a rating answer reads as a training target ("{level}" as in
        depictqa's level data; "The quality of the image is {level}." for Q-Align-style wording).
        """
        items, single = _as_list(images)
        refs = _broadcast(reference, len(items), "reference")
        reqs = []
        for im, ref in zip(items, refs):
            rate_query = query or default_query("rate", "single", ref is not None)
            req = self._request("assess", {"ref": ref, "a": im}, "single", rate_query)
            head = self._head("assess", req, tuple(answer_template.format(level=w) for w in LEVELS))
            req.answer_prefix, req.choices = list(head.prefix), head.ids
            reqs.append(req)
        weights = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])

        def forward(prepared: list[Prepared]) -> list[Score]:
            probs = self._choice_probs(prepared)
            return [Score(task=p.request.spec.official, score=float((q * weights).sum()),
                          probabilities=dict(zip(LEVELS, q.tolist()))) for p, q in zip(prepared, probs)]

        out = self._run(reqs, forward, lambda req, err: Score(task=req.spec.official, error=err))
        return out[0] if single else out

    def prefer(self, image_a: Any, image_b: Any, reference: Any = None, query: str | None = None,
               both_orders: bool = False) -> Any:
        """P(``image_a`` better than ``image_b``) from the letter after the teacher-forced "Image".

        ``both_orders``: also ask with the images swapped (same batch) and report
        ``p_b_when_first``, ``order_sum`` (not forced to 1) and ``p_a_debiased``.
        """
        a, single = _as_list(image_a)
        b = _broadcast(image_b, len(a), "image_b")
        refs = _broadcast(reference, len(a), "reference")
        pairs = [(x, y, r) for x, y, r in zip(a, b, refs)]
        if both_orders:
            pairs = [p for x, y, r in pairs for p in ((x, y, r), (y, x, r))]
        reqs = []
        for x, y, r in pairs:
            req = self._request("compare", {"ref": r, "a": x, "b": y}, "single", query)
            head = self._head("compare", req, ("Image A", "Image B"))
            req.answer_prefix, req.choices = list(head.prefix), head.ids
            reqs.append(req)

        def forward(prepared: list[Prepared]) -> list[Preference]:
            out = []
            for p, (q, raw) in zip(prepared, self._choice_probs(prepared, with_raw=True)):
                out.append(Preference(task=p.request.spec.official, p_a=float(q[0]),
                                      probabilities={"A": float(q[0]), "B": float(q[1])},
                                      raw={"A": float(raw[0]), "B": float(raw[1])}))
            return out

        res = self._run(reqs, forward,
                        lambda req, err: Preference(task=req.spec.official, error=err))
        if both_orders:
            res = [_combine(ab, ba) for ab, ba in zip(res[0::2], res[1::2])]
        return res[0] if single else res

    def _head(self, task: str, req: Request, answers: tuple[str, ...]) -> ChoiceHead:
        key = (task, req.reference, req.query, answers)
        if key not in self._heads:
            slots = len(req.spec.slots)
            self._heads[key] = choice_head(self.model.prompts, task, req.reference, req.query, answers, slots)
        return self._heads[key]

    def _choice_probs(self, prepared: list[Prepared], with_raw: bool = False) -> list[Any]:
        """Softmax over each request's candidate tokens (``request.choices``)."""
        batch = collate_left(prepared, self.tokenizer.pad_token_id or 0).to(self.device)
        with torch.no_grad():
            full = last_token_logits(self.model, batch).softmax(-1).cpu()
        out = []
        for row, p in zip(full, prepared):
            raw = row[list(p.request.choices)]
            q = raw / raw.sum()
            out.append((q, raw) if with_raw else q)
        return out

    # ---- batching ------------------------------------------------------------------------------
    def _run(self, requests: Sequence[Request], forward: Callable[[list[Prepared]], list[R]],
             failed: Callable[[Request, str], R]) -> list[R]:
        """Prepare requests chunk by chunk (bad images become error results), run the good ones in
        batches of ``batch_size`` and return results in request order."""
        results: list[R | None] = [None] * len(requests)
        for start in range(0, len(requests), self.batch_size):
            chunk, ready = range(start, min(start + self.batch_size, len(requests))), []
            for i in chunk:
                try:
                    ready.append((i, prepare(self.model, requests[i], self.image_cfg)))
                except (ImageError, ValueError, OSError) as err:
                    results[i] = failed(requests[i], str(err))
            if ready:
                with torch.inference_mode():
                    for (i, _), res in zip(ready, forward([p for _, p in ready])):
                        results[i] = res
        return results  # type: ignore[return-value]


class _FeatureMemo:
    """``model.encode_images`` that encodes only images (by pixel content) it has not seen
    (:meth:`Assessor.sharing_image_features`)."""

    def __init__(self, encode_images: Callable[..., list[torch.Tensor]]) -> None:
        self.encode_images = encode_images
        self.tokens: dict[str, torch.Tensor] = {}

    def __call__(self, pixels: list[torch.Tensor], keys: Any = None, layout: Any = None) -> list[torch.Tensor]:
        wanted = [_pixel_key(p) for p in pixels]
        todo = {key: i for i, key in enumerate(wanted) if key not in self.tokens}  # each new image once
        if todo:
            for key, tokens in zip(todo, self.encode_images([pixels[i] for i in todo.values()])):
                self.tokens[key] = tokens
        return [self.tokens[key] for key in wanted]


def _pixel_key(pixels: torch.Tensor) -> str:
    data = pixels.detach().cpu().contiguous()
    digest = hashlib.blake2b(data.reshape(-1).view(torch.uint8).numpy().tobytes(), digest_size=16).hexdigest()
    return f"{tuple(data.shape)}:{data.dtype}:{digest}"


def _combine(ab: Preference, ba: Preference) -> Preference:
    if ab.error or ba.error:
        return Preference(task=ab.task, error=ab.error or ba.error)
    ab.p_b_when_first = ba.p_a
    ab.order_sum = float(ab.p_a + ba.p_a)  # type: ignore[operator]
    ab.p_a_debiased = float((ab.p_a + 1.0 - ba.p_a) / 2.0)  # type: ignore[operator]
    return ab
