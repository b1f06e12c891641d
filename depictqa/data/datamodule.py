"""DepictQADataModule: the recipe's sources -> mixed, preprocessed, tokenised, batched streams.

Batching happens inside the DataLoader workers: each worker tokenises its samples, groups them
(fixed ``batch_size``, or a token budget when ``max_tokens_per_batch`` is set) and collates them
(padded, or packed into one row), so the training process receives ready :class:`Batch` objects.

The data module does not hold the model: it receives a :class:`SampleEncoder`, the little it
needs to know of one (prompt builder, patch size, tokens per image, pixel statistics), which
:func:`depictqa.build.sample_encoder` makes from a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from depictqa.batch import Batch
from depictqa.data.collate import Item, budget_batches, collate
from depictqa.data.schema import Sample
from depictqa.encoders.base import CLIP_MEAN, CLIP_STD
from depictqa.prompts import PromptBuilder


@dataclass
class SampleEncoder:
    """Prepared :class:`Sample` (images are [3, H, W] tensors) -> tokenised :class:`Item`.

    ``tokens_per_image(h, w)``: how many LLM positions an image of that (padded) size takes;
    ``mean``/``std``: the encoder's pixel statistics (for padding and the image config);
    ``cache_keys``: also compute content keys for the frozen-encoder feature cache."""

    prompts: PromptBuilder
    patch_size: int
    tokens_per_image: Callable[[int, int], int]
    pad_id: int = 0
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    cache_keys: bool = False

    def __call__(self, sample: Sample, with_answer: bool = True) -> Item:
        pixels = [sample.images[k] for k in sample.image_order]
        counts = [self.tokens_per_image(int(p.shape[-2]), int(p.shape[-1])) for p in pixels]
        turns = sample.conversations
        query, answer = turns[0]["value"], turns[1]["value"]
        # every later (question, answer) turn is trained on too; inference answers the first question
        later = [(q["value"], a["value"]) for q, a in zip(turns[2::2], turns[3::2])] if with_answer else []
        task = sample.spec
        encoded = self.prompts.encode(task, task.reference, query, answer if with_answer else None, counts, later)
        keys = None
        if self.cache_keys:
            from depictqa.feature_cache import image_key

            keys = [image_key(p) for p in pixels]
        return Item(encoded, pixels, task, key=sample.key, style=sample.style, meta=sample.meta, image_keys=keys)


class BatchedStream(IterableDataset):
    """Groups and collates a stream of Items; ``skip`` drops the first batches (resume)."""

    def __init__(self, items: IterableDataset, pad_id: int, batch_size: int, max_tokens: int | None,
                 packed: bool, skip: int = 0) -> None:
        self.items, self.pad_id, self.batch_size = items, pad_id, batch_size
        self.max_tokens, self.packed, self.skip = max_tokens, packed, skip

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.items, "set_epoch"):
            self.items.set_epoch(epoch)

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info else (1, 0)
        # The DataLoader takes batches from workers round-robin; drop this worker's share of the
        # first `skip` batches so a resumed run sees exactly the batches it would have seen.
        to_skip = self.skip // workers + (1 if wid < self.skip % workers else 0)
        groups = (budget_batches(self.items, self.max_tokens, self.batch_size) if self.max_tokens
                  else _fixed(self.items, self.batch_size))
        pending = None  # one batch held back, so the last one leaves with the final counts
        for i, group in enumerate(groups):
            if i >= to_skip:
                if pending is not None:
                    yield self._counted(pending, wid)
                pending = collate(group, pad_id=self.pad_id, packed=self.packed)
        if pending is not None:
            yield self._counted(pending, wid)

    def _counted(self, batch: Batch, worker: int) -> Batch:
        """Attach this worker's running read/skip counts (the task sums them over workers)."""
        if hasattr(self.items, "stats"):
            batch.info.data_stats = {"worker": worker, **self.items.stats}
        return batch


def _fixed(items: Any, size: int) -> Iterator[list[Item]]:
    group: list[Item] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


class DepictQADataModule(L.LightningDataModule):
    """The recipe's ``data`` block as Lightning dataloaders. ``encoder``: what the pipeline needs of
    the model (``depictqa.build.sample_encoder(model)``); ``skip_batches``: batches a resumed run
    has already seen."""

    def __init__(self, recipe: DictConfig, encoder: SampleEncoder, skip_batches: int = 0) -> None:
        super().__init__()
        if not isinstance(encoder, SampleEncoder):
            raise TypeError(f"DepictQADataModule takes a SampleEncoder (depictqa.build.sample_encoder(model)), "
                            f"got {type(encoder).__name__}")
        self.recipe, self.encoder, self.skip_batches = recipe, encoder, skip_batches
        self._train: BatchedStream | None = None

    def _image_cfg(self) -> Any:
        from depictqa.data.images import ImageConfig

        img = self.recipe.data.image
        enc = self.encoder
        return ImageConfig(short_side=img.short_side, max_long_side=img.max_long_side, min_size=img.min_size,
                           crop=tuple(img.crop) if img.crop else None, flip=img.get("flip"),
                           pad_align=img.get("pad_align", "corner"), crop_mode=img.get("crop_mode", "random"),
                           mean=tuple(enc.mean), std=tuple(enc.std), uint8=True)  # the model normalises on its device

    def _stream(self, sources: dict[str, Any], train: bool, samples: int | None) -> BatchedStream:
        from depictqa.data.mixer import MixedSampleStream

        d = self.recipe.data
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (None, None)
        if train and d.resampled and samples is None:
            # An endless stream: the run ends at trainer.max_steps / max_minutes, never mid-data.
            samples = 10**9
        specs = source_specs(sources)
        enc = self.encoder
        stream = MixedSampleStream(specs, self._image_cfg(), enc.patch_size, seed=self.recipe.seed, train=train,
                                   resampled=d.resampled if train else False, samples_per_epoch=samples,
                                   transform=enc, max_skip_rate=d.max_skip_rate,
                                   shuffle_buffer=d.shuffle_buffer if train else 0, rank=rank, world_size=world)
        return BatchedStream(stream, enc.pad_id, d.batch_size, d.max_tokens_per_batch,
                             d.packed, skip=self.skip_batches if train else 0)

    def train_dataloader(self) -> DataLoader:
        d = self.recipe.data
        if not d.sources:
            raise ValueError("data.sources is empty: name at least one source {shards: ..., weight: ...}")
        self._train = self._stream(dict(d.sources), True, d.samples_per_epoch)
        return DataLoader(self._train, batch_size=None, num_workers=d.num_workers,
                          persistent_workers=False, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader | list:
        d = self.recipe.data
        if not d.val:
            return []
        stream = self._stream({"val": d.val}, False, None)
        return DataLoader(_Limited(stream, d.val_samples, d.batch_size), batch_size=None, num_workers=0)

    def answers(self) -> Iterator[str]:
        """Every answer of the training and validation sources, read once in shard order (no image
        is decoded): what ``model.llm.output_vocab: answers`` builds its head from."""
        from depictqa.data.mixer import iter_answers

        d = self.recipe.data
        yield from iter_answers(source_specs({**d.sources, **({"val": d.val} if d.val else {})}))

    def set_epoch(self, epoch: int) -> None:
        """Reseed the training stream for ``epoch`` (called by the fit loop's EpochSeeder callback)."""
        if self._train is not None:
            self._train.set_epoch(epoch)


def source_specs(sources: dict[str, Any]) -> list[Any]:
    """The recipe's ``{name: {shards, weight, repeats}}`` as :class:`~depictqa.data.mixer.SourceSpec` s."""
    from depictqa.data.mixer import SourceSpec

    return [SourceSpec(name, OmegaConf.to_container(s.shards) if OmegaConf.is_list(s.shards) else s.shards,
                       float(s.get("weight", 1.0)), s.get("repeats")) for name, s in sources.items()]


class _Limited(IterableDataset):
    """The first ``samples`` samples of a stream (validation runs on a fixed held-out slice)."""

    def __init__(self, stream: BatchedStream, samples: int, batch_size: int) -> None:
        self.stream, self.batches = stream, max(1, -(-samples // max(1, batch_size)))

    def __iter__(self) -> Iterator[Batch]:
        for i, batch in enumerate(self.stream):
            if i >= self.batches:
                return
            yield batch
