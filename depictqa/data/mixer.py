"""A weighted mixture of WebDataset sources, split over ranks and workers, yielding prepared samples.

Each (rank, DataLoader worker) draws sources in proportion to their weights with its own
``random.Random`` seeded by (seed, rank, worker, epoch) -- never the global ``random`` module that
``webdataset.RandomMix`` uses -- so ranks see different data and a rerun sees the same.

* Default (``resampled=False``): every source's shard list is shuffled with a seed shared by all
  ranks (seed, epoch, source) and dealt round-robin to the ``world_size * num_workers`` readers,
  so no sample is read twice in an epoch. When a source runs out it drops out and the remaining
  weights are renormalised; the epoch ends when all are exhausted (ranks may then differ in length).
* ``repeats`` (instead of weights, as the official data mix ``[[meta, repeats], ...]``): an epoch
  holds every sample of a source ``repeats`` times (each pass reshuffled), interleaved at random;
  a source's draw weight is ``repeats`` x its shard count, so sources of similar-sized shards run
  out together. With ``resampled=True`` that weight is all there is: the proportions are exact
  only when shards hold equal numbers of samples.
* ``resampled=True``: each reader draws shards with replacement forever (its own RNG) and stops
  after exactly ``samples_per_epoch`` samples per rank, split over workers, so every rank yields the
  same number of batches -- what DDP needs.

Bad data (unparseable JSON, schema errors, corrupt images, truncated tars) is skipped, counted in
:attr:`MixedSampleStream.stats` and warned about (rate-limited); past ``max_skip_rate`` it raises.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import random
import tarfile
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import IterableDataset, get_worker_info

from depictqa.data.images import ImageConfig, ImageError, load_image, prepare_images
from depictqa.data.schema import RecordParseError, Sample, SchemaError
from depictqa.data.shards import decode_entry

log = logging.getLogger(__name__)
MIN_SEEN_FOR_RATE = 50  # judge the skip rate only once a handful of samples make it meaningful


class DataQualityError(RuntimeError):
    """Too many samples of a stream were unusable."""


@dataclass
class SourceSpec:
    """One data source: shard paths (brace patterns, globs, ``pipe:`` commands or URLs) and a weight,
    or an integer ``repeats`` (passes per epoch; the weight is then derived, see the module doc)."""

    name: str
    shards: str | list[str]
    weight: float = 1.0
    repeats: int | None = None


def expand_shards(shards: str | Sequence[str]) -> list[str]:
    """Brace-expand and glob shard specs; ``pipe:`` commands and URLs pass through unchanged."""
    import braceexpand

    out: list[str] = []
    for spec in [shards] if isinstance(shards, str) else shards:
        for item in braceexpand.braceexpand(spec):
            if item.startswith("pipe:") or "://" in item or not glob.has_magic(item):
                out.append(item)
                continue
            matches = sorted(glob.glob(item))
            if not matches:
                raise FileNotFoundError(f"no shard matches {item!r}")
            out.extend(matches)
    return out


def pick_source(rng: random.Random, weights: Sequence[float]) -> int:
    """Index of a source drawn with probability proportional to its weight."""
    return rng.choices(range(len(weights)), weights=weights)[0]


def read_tar(url: str, on_error: Callable[[str, str], None]) -> Iterator[dict[str, Any]]:
    """Raw webdataset entries (``__key__``, ``__url__``, ext -> bytes) of one tar shard.

    Written on ``tarfile`` rather than webdataset's expander because that one reports a truncated
    tar twice, passes the half-read last sample on and leaves the file open. On a read error the
    partial sample and the rest of the shard are dropped and ``on_error("truncated_tar", msg)`` called.
    """
    from webdataset.gopen import gopen  # local files, pipe: commands and URLs alike

    try:
        stream = gopen(url, "rb")
    except Exception as err:  # noqa: BLE001 -- any failure to open is reported the same way
        on_error("unreadable_shard", f"{url}: {err}")
        return
    counted = _CountingReader(stream)
    try:
        with tarfile.open(fileobj=counted, mode="r|*") as tar:
            current: dict[str, Any] | None = None
            for member in tar:
                folder, _, base = member.name.rpartition("/")
                stem, dot, ext = base.partition(".")
                if not member.isreg() or not dot or stem.startswith("__"):
                    continue
                key = f"{folder}/{stem}" if folder else stem
                if current is not None and current["__key__"] != key:
                    yield current  # complete: the next sample has begun
                    current = None
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if len(data) != member.size:  # stream mode hands back a short read at EOF silently
                    raise tarfile.ReadError(f"unexpected end of data in {member.name}")
                current = current or {"__key__": key, "__url__": url}
                current[ext.lower()] = data
            # tarfile ends quietly at a cut-off header; a whole tar ends with a full zero block
            # (compressed tars need no check: gzip/bz2/xz raise EOFError when cut short)
            if getattr(tar.fileobj, "comptype", "tar") == "tar" and counted.count < tar.offset + 512:
                raise tarfile.ReadError(f"cut off after {counted.count} bytes")
            if current is not None:
                yield current
    except (tarfile.TarError, OSError, EOFError) as err:
        on_error("truncated_tar", f"{url}: {err}; rest of the shard skipped")
    finally:
        stream.close()


class _CountingReader:
    """Counts the bytes a file-like object handed out (to tell a cut-off tar from a whole one)."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.count = raw, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data


def dist_info(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size): explicit values, else ``torch.distributed``, else ``RANK``/``WORLD_SIZE``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        found = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        found = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return (found[0] if rank is None else rank), (found[1] if world_size is None else world_size)


def iter_texts(sources: Sequence[SourceSpec], limit: int | None = None) -> Iterator[str]:
    """Conversation turns of the first ``limit`` samples of each source, in shard order, images
    untouched (to train a tokenizer on)."""
    for turns in _conversations(sources, limit):
        yield from (t["value"] for t in turns if isinstance(t, dict) and isinstance(t.get("value"), str))


def iter_answers(sources: Sequence[SourceSpec]) -> Iterator[str]:
    """Every answer (the ``gpt`` turns) of every sample of each source, images untouched."""
    for turns in _conversations(sources, None):
        yield from (t["value"] for t in turns
                    if isinstance(t, dict) and t.get("from") == "gpt" and isinstance(t.get("value"), str))


def _conversations(sources: Sequence[SourceSpec], limit: int | None) -> Iterator[list[Any]]:
    for spec in sources:
        count = 0
        for url in expand_shards(spec.shards):
            for entry in read_tar(url, lambda reason, msg: log.warning("%s: %s", reason, msg)):
                if limit is not None and count >= limit:
                    break
                try:
                    turns = json.loads(entry["json"])["conversations"]
                except (KeyError, ValueError, TypeError):
                    continue
                if isinstance(turns, list):
                    count += 1
                    yield turns


class MixedSampleStream(IterableDataset):
    """Samples of weighted sources whose ``images`` are prepared tensors ``[3, H, W]`` (in
    ``sample.image_order``), passed through ``transform``. See the module docstring."""

    def __init__(self, sources: Sequence[SourceSpec], image_cfg: ImageConfig, patch_size: int, *,
                 seed: int = 0, train: bool = True, resampled: bool = False,
                 samples_per_epoch: int | None = None, transform: Callable[[Sample], Any] | None = None,
                 max_skip_rate: float = 0.01, shuffle_buffer: int = 0,
                 rank: int | None = None, world_size: int | None = None) -> None:
        super().__init__()
        if not sources:
            raise ValueError("MixedSampleStream needs at least one source")
        if any(s.weight < 0 for s in sources) or not any(s.weight > 0 for s in sources):
            raise ValueError("source weights must be >= 0 with at least one > 0")
        if resampled and not samples_per_epoch:
            raise ValueError("resampled=True needs samples_per_epoch (the stream is otherwise endless)")
        if any(s.repeats is not None for s in sources) and not all(
                isinstance(s.repeats, int) and s.repeats >= 1 for s in sources):
            raise ValueError("source repeats must be integers >= 1, given for every source or for none")
        self.sources = list(sources)
        self.shards = {s.name: expand_shards(s.shards) for s in self.sources}
        if self.sources[0].repeats is not None:  # repeats x shard count: similar-sized shards end together
            self.sources = [SourceSpec(s.name, s.shards, float(s.repeats * len(self.shards[s.name])), s.repeats)
                            for s in self.sources]
        self.image_cfg, self.patch_size = image_cfg, patch_size
        self.seed, self.train, self.resampled = seed, train, resampled
        self.samples_per_epoch, self.transform = samples_per_epoch, transform
        self.max_skip_rate, self.shuffle_buffer = max_skip_rate, shuffle_buffer
        self._rank, self._world = rank, world_size
        self._epoch = 0
        self._reset_stats()

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration. Each iteration also advances the epoch by one in
        its own process, so persistent DataLoader workers (which never see this call) stay in step."""
        self._epoch = epoch

    @property
    def stats(self) -> dict[str, Any]:
        """Counts of the latest iteration *in this process* (each DataLoader worker keeps its own)."""
        return {"seen": self._seen, "yielded": self._yielded, "skipped": dict(self._skipped)}

    def _reset_stats(self) -> None:
        self._seen = self._yielded = 0
        self._skipped: Counter[str] = Counter()
        self._first_error: dict[str, str] = {}

    def _skip(self, reason: str, message: str) -> None:
        self._seen += 1
        self._skipped[reason] += 1
        n = self._skipped[reason]
        self._first_error.setdefault(reason, message)
        if n <= 3 or n in (10, 100, 1000, 10_000, 100_000):  # rate-limited: a bad shard must not flood logs
            log.warning("skipped sample (%s, %d so far): %s", reason, n, message)
        self._check_rate(final=False)

    def _check_rate(self, final: bool) -> None:
        skipped = sum(self._skipped.values())
        if not skipped or (self._seen < MIN_SEEN_FOR_RATE and not final):
            return
        if skipped / self._seen > self.max_skip_rate:
            firsts = "; ".join(f"{r}: {m}" for r, m in self._first_error.items())
            raise DataQualityError(f"{skipped} of {self._seen} samples skipped {dict(self._skipped)}, over "
                                   f"max_skip_rate={self.max_skip_rate}. First of each: {firsts}")

    def _budget(self, worker: int, workers: int) -> int | None:
        if self.samples_per_epoch is None:
            return None
        base, extra = divmod(self.samples_per_epoch, workers)
        return base + (1 if worker < extra else 0)

    def _entries(self, spec: SourceSpec, reader: int, readers: int, epoch: int) -> Iterator[dict[str, Any]]:
        shards = list(self.shards[spec.name])
        if self.resampled:
            rng = random.Random(f"{self.seed}/{reader}/{epoch}/{spec.name}/shards")
            empty_in_a_row = 0
            while True:
                got = False
                for entry in read_tar(rng.choice(shards), self._skip):
                    got = True
                    yield entry
                empty_in_a_row = 0 if got else empty_in_a_row + 1
                if empty_in_a_row > 2 * len(shards) + 10:
                    raise DataQualityError(f"source {spec.name!r}: no readable sample in its shards")
        for rep in range(spec.repeats or 1):  # each pass in its own order
            if self.train:  # one permutation shared by all readers, so their slices stay disjoint
                random.Random(f"{self.seed}/{epoch}/{spec.name}/order" + (f"/{rep}" if rep else "")).shuffle(shards)
            for url in shards[reader::readers]:
                yield from read_tar(url, self._skip)

    def _mixed(self, rng: random.Random, reader: int, readers: int, epoch: int) -> Iterator[dict[str, Any]]:
        streams = [self._entries(s, reader, readers, epoch) for s in self.sources]
        active = [i for i, s in enumerate(self.sources) if s.weight > 0]
        while active:
            i = active[pick_source(rng, [self.sources[j].weight for j in active])]
            entry = next(streams[i], None)
            if entry is None:
                active.remove(i)  # exhausted: its share goes to the others, pro rata
                continue
            yield entry

    def _prepare(self, entry: dict[str, Any], rng: random.Random) -> Sample:
        sample = decode_entry(entry)
        where = f"{entry['__url__']}:{sample.key}"
        images = {name: load_image(sample.images[name], f"{where}:{name}", self.image_cfg.max_pixels)
                  for name in sample.image_order}
        augment = self.train and (self.image_cfg.crop is not None or bool(self.image_cfg.flip))
        sample.images = prepare_images(images, self.image_cfg, self.patch_size, rng if augment else None)
        return sample

    def __iter__(self) -> Iterator[Any]:
        rank, world = dist_info(self._rank, self._world)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        reader, readers = rank * workers + worker, world * workers  # this reader among all of them
        epoch, self._epoch = self._epoch, self._epoch + 1
        rng = random.Random(f"{self.seed}/{rank}/{worker}/{epoch}")
        self._reset_stats()
        budget = self._budget(worker, workers)
        entries = self._mixed(rng, reader, readers, epoch)
        if self.train and self.shuffle_buffer > 1:
            entries = _shuffled(entries, self.shuffle_buffer, rng)
        for entry in entries:
            if budget is not None and self._yielded >= budget:
                break
            try:
                sample = self._prepare(entry, rng)
            except RecordParseError as err:
                self._skip("bad_json", str(err))
                continue
            except SchemaError as err:
                self._skip("schema", str(err))
                continue
            except ImageError as err:
                self._skip("bad_image", str(err))
                continue
            self._seen += 1
            self._yielded += 1
            yield self.transform(sample) if self.transform is not None else sample
        self._check_rate(final=True)


def _shuffled(items: Iterator[dict[str, Any]], size: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Buffered shuffle of raw (still encoded, so cheap to hold) entries."""
    buffer: list[dict[str, Any]] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= size:
            j = rng.randrange(len(buffer))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer
