"""The batcher runs the calls of one gathered batch inside one ``scope()``; a failing call fails
only its own requests."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from depictqa.serve.batcher import Batcher


def test_calls_of_one_gathered_batch_share_one_scope_and_fail_alone():
    events: list[tuple] = []
    depth = {"now": 0}

    @contextlib.contextmanager
    def scope():
        depth["now"] += 1
        events.append(("enter",))
        try:
            yield
        finally:
            depth["now"] -= 1
            events.append(("exit",))

    def runner(key, payloads):
        events.append(("call", key, len(payloads), depth["now"]))
        if key == "bad":
            raise ValueError("no")
        return [f"{key}:{p}" for p in payloads]

    async def main():
        batcher = Batcher(runner, max_batch=16, timeout_ms=200, scope=scope)
        jobs = [batcher.submit("x", 1), batcher.submit("y", 2), batcher.submit("bad", 3), batcher.submit("x", 4)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    out = asyncio.run(main())
    assert out[:2] == ["x:1", "y:2"] and out[3] == "x:4"
    assert isinstance(out[2], ValueError)
    assert events[0] == ("enter",) and events[-1] == ("exit",) and events.count(("enter",)) == 1
    calls = [e for e in events if e[0] == "call"]
    assert [(k, n) for _, k, n, _ in calls] == [("x", 2), ("y", 1), ("bad", 1)]
    assert all(d == 1 for *_, d in calls)  # every call ran inside the scope


def test_without_a_scope_the_batcher_still_batches():
    async def main():
        batcher = Batcher(lambda key, ps: [p * 2 for p in ps], max_batch=8, timeout_ms=100)
        out = await asyncio.gather(*(batcher.submit("k", i) for i in range(5)))
        return out, batcher.stats

    out, stats = asyncio.run(main())
    assert out == [0, 2, 4, 6, 8] and stats.largest == 5 and stats.calls == 1


@pytest.mark.parametrize("bad", [0, -1])
def test_max_batch_must_be_positive(bad):
    with pytest.raises(ValueError):
        Batcher(lambda k, p: p, max_batch=bad)
