"""Group concurrent requests into batches for the Assessor.

Requests wait in an asyncio queue. A worker takes the first, then gathers whatever arrives within
``timeout_ms`` (up to ``max_batch``), splits the group by what can share one model call (the same
operation and options), and runs the calls of one gathered batch in a worker thread (one after the
other, inside ``scope()`` when given: the server shares image features between them there) so
the event loop keeps accepting requests. The Assessor's answers do not depend on what else is in
the batch, so a batched answer is the one-at-a-time answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Hashable

# (operation key, list of request payloads) -> list of results, one per payload, in order
Runner = Callable[[Hashable, list[Any]], list[Any]]


@dataclass
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future


@dataclass
class BatchStats:
    """What the batcher did: calls made and the largest batch (tests and /healthz read it)."""

    calls: int = 0
    requests: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)


class Batcher:
    """``await batcher.submit(key, payload)`` -> the runner's result for that payload."""

    def __init__(self, runner: Runner, max_batch: int = 16, timeout_ms: float = 10.0,
                 scope: Callable[[], ContextManager[Any]] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.runner, self.max_batch, self.timeout = runner, max_batch, timeout_ms / 1000.0
        self.scope = scope or contextlib.nullcontext
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, key: Hashable, payload: Any) -> Any:
        if self._queue is None:  # created on the serving loop, on first use
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(key, payload, future))
        return await future

    async def _gather(self) -> list[_Job]:
        assert self._queue is not None
        jobs = [await self._queue.get()]
        deadline = time.monotonic() + self.timeout
        while len(jobs) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:
                break
        return jobs

    def _run_groups(self, groups: dict[Hashable, list[_Job]]) -> list[tuple[list[Any] | None, Exception | None]]:
        """Every call of one gathered batch, in this (worker) thread: (results, None) or (None, error)."""
        out: list[tuple[list[Any] | None, Exception | None]] = []
        with self.scope():
            for key, group in groups.items():
                try:
                    out.append((self.runner(key, [j.payload for j in group]), None))
                except Exception as err:  # the whole call failed: every request in it hears why
                    out.append((None, err))
        return out

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            groups: dict[Hashable, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            try:
                outcomes = await loop.run_in_executor(None, self._run_groups, groups)
            except Exception as err:  # the scope itself failed
                outcomes = [(None, err)] * len(groups)
            for group, (results, err) in zip(groups.values(), outcomes):
                if results is None:
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(err or RuntimeError("the model call failed"))
                    continue
                self.stats.calls += 1
                self.stats.requests += len(group)
                self.stats.largest = max(self.stats.largest, len(group))
                self.stats.sizes.append(len(group))
                for job, result in zip(group, results):
                    if not job.future.done():
                        job.future.set_result(result)
