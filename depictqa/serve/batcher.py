"""Group concurrent requests into batches for the Assessor.

Requests wait in a queue. A worker takes what is waiting, in order, split by what can share one
model call (the same operation and options): up to ``max_batch`` requests per call and
``2 * max_batch`` jobs per gathered batch. It runs the calls of one gathered batch in a worker
thread (one after the other, inside ``scope()`` when given: the server shares image features
between them there) so the event loop keeps accepting requests.

The worker only waits for more when more are known to be coming: a request announces itself with
:meth:`Batcher.arrival` as soon as it reaches the server (before its upload is read and decoded)
and counts as *arriving* until its jobs are submitted. While requests are arriving, the first job
waits for them, up to ``timeout_ms``; when none is, the batch runs at once. So a lone request gets
the latency of an unbatched one (no gathering window), and under load the batch is whatever queued
up while the model was busy, plus the requests already on their way.

The Assessor's answers do not depend on what else is in the batch, so a batched answer is the
one-at-a-time answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Hashable, Iterable

# (operation key, list of request payloads) -> list of results, one per payload, in order
Runner = Callable[[Hashable, list[Any]], list[Any]]
RECENT = 4096  # BatchStats keeps the sizes of this many recent calls and gathered batches


@dataclass
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future


@dataclass
class BatchStats:
    """What the batcher did (tests and /healthz read it): model calls made, requests answered, the
    largest call, gathered batches run and how many of them waited for arriving requests, and the
    sizes of the most recent calls (``sizes``) and gathered batches (``gathered``, in jobs)."""

    calls: int = 0
    requests: int = 0
    largest: int = 0
    gathers: int = 0
    waited: int = 0
    sizes: collections.deque = field(default_factory=lambda: collections.deque(maxlen=RECENT))
    gathered: collections.deque = field(default_factory=lambda: collections.deque(maxlen=RECENT))


class Arrival:
    """A request on its way to the batcher: counted as arriving until :meth:`done` (idempotent)."""

    def __init__(self, batcher: "Batcher") -> None:
        self._batcher: Batcher | None = batcher
        batcher._arriving += 1

    def done(self) -> None:
        if self._batcher is not None:
            batcher, self._batcher = self._batcher, None
            batcher._arriving -= 1
            batcher._wakeup()


class Batcher:
    """``await batcher.submit(key, payload)`` -> the runner's result for that payload.

    ``max_batch``: the most requests in one model call (1: batching off; the calls of one request,
    e.g. a comparison's answer and its P(A better), still share a gathered batch);
    ``timeout_ms``: the longest a gathered batch waits for requests still arriving.
    Use it from one event loop (the server's).
    """

    def __init__(self, runner: Runner, max_batch: int = 16, timeout_ms: float = 10.0,
                 scope: Callable[[], ContextManager[Any]] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if timeout_ms < 0:
            raise ValueError(f"timeout_ms must be >= 0, got {timeout_ms}")
        self.runner, self.max_batch, self.timeout = runner, max_batch, timeout_ms / 1000.0
        self.scope = scope or contextlib.nullcontext
        self.stats = BatchStats()
        self._pending: collections.deque[_Job] = collections.deque()
        self._arriving = 0
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    @property
    def arriving(self) -> int:
        """Requests announced (:meth:`arrival`) whose jobs are not submitted yet."""
        return self._arriving

    def arrival(self) -> Arrival:
        """Announce a request that will submit jobs soon; pass it to :meth:`submit` / :meth:`submit_many`
        (or call its ``done()`` if the request ends without submitting, e.g. on bad input)."""
        return Arrival(self)

    def _wakeup(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _start(self) -> None:
        if self._worker is None:  # created on the serving loop, on first use
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def submit(self, key: Hashable, payload: Any, arrival: Arrival | None = None) -> Any:
        (result,) = await self.submit_many([(key, payload)], arrival)
        return result

    async def submit_many(self, jobs: Iterable[tuple[Hashable, Any]], arrival: Arrival | None = None) -> list[Any]:
        """Queue several jobs at once (so they share a gathered batch), then mark ``arrival`` done;
        their results in order (a job whose call failed raises its error)."""
        self._start()
        loop = asyncio.get_running_loop()
        futures = []
        for key, payload in jobs:
            futures.append(loop.create_future())
            self._pending.append(_Job(key, payload, futures[-1]))
        if arrival is not None:
            arrival.done()  # after queueing: the worker never sees "nothing arriving" before the jobs
        self._wakeup()
        return list(await asyncio.gather(*futures))

    def _take(self, jobs: list[_Job], counts: dict[Hashable, int]) -> bool:
        """Move waiting jobs into ``jobs`` in order until one would make its call larger than
        ``max_batch`` (it stays first in line), or the gathered batch holds ``2 * max_batch`` jobs (a
        comparison's two calls for ``max_batch`` requests: it returns nothing until all have run);
        True when full."""
        while self._pending:
            if len(jobs) >= 2 * self.max_batch:
                return True
            job = self._pending[0]
            if job.future.done():  # cancelled (a client that went away): no model work for it
                self._pending.popleft()
                continue
            if counts.get(job.key, 0) >= self.max_batch:
                return True
            self._pending.popleft()
            jobs.append(job)
            counts[job.key] = counts.get(job.key, 0) + 1
        return any(n >= self.max_batch for n in counts.values())

    async def _gather(self) -> list[_Job]:
        assert self._wake is not None
        jobs: list[_Job] = []
        counts: dict[Hashable, int] = {}
        full = False
        while not jobs:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            full = self._take(jobs, counts)
        if not full and self._arriving > 0 and self.timeout > 0:
            # more requests are on their way (reading / decoding their uploads): wait for them,
            # but no longer than the window
            self.stats.waited += 1
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            while not full and self._arriving > 0:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), left)
                full = self._take(jobs, counts)
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
            self.stats.gathers += 1
            self.stats.gathered.append(len(jobs))
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
