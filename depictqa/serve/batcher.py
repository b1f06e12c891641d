"""Group concurrent requests into batches for the Assessor.

Requests wait in an asyncio queue. A worker takes the first, then gathers whatever arrives within
``timeout_ms`` (up to ``max_batch``), splits the group by what can share one model call (the same
operation and options), and runs each call in a worker thread so the event loop keeps accepting
requests. The Assessor's answers do not depend on what else is in the batch, so a batched answer is
the one-at-a-time answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

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

    def __init__(self, runner: Runner, max_batch: int = 16, timeout_ms: float = 10.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.runner, self.max_batch, self.timeout = runner, max_batch, timeout_ms / 1000.0
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

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            groups: dict[Hashable, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for key, group in groups.items():
                try:
                    results = await loop.run_in_executor(None, self.runner, key, [j.payload for j in group])
                except Exception as err:  # the whole call failed: every request in it hears why
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(err)
                    continue
                self.stats.calls += 1
                self.stats.requests += len(group)
                self.stats.largest = max(self.stats.largest, len(group))
                self.stats.sizes.append(len(group))
                for job, result in zip(group, results):
                    if not job.future.done():
                        job.future.set_result(result)
