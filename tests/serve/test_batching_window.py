"""When the batcher waits and when it does not: a lone request never waits for the gathering window
(it gets unbatched latency), requests known to be arriving are waited for (and grouped), requests
that queue up while the model is busy form the next batch, and ``max_batch`` bounds each model call.
Last, the same over HTTP: a real server with a 30 s window answers a lone request at once and still
groups concurrent ones (equal to one-at-a-time answers)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from depictqa.serve.batcher import Batcher
from tests.infer.conftest import assessor, ckpt, images, tiny  # noqa: F401  (fixtures)
from tests.serve.conftest import Server, png

WINDOW_MS = 30_000  # far longer than any answer here takes: waiting for it would show


class Recorder:
    """A runner that records each call's (key, payloads) and can hold the first call until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.calls: list[tuple] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, key, payloads):
        self.calls.append((key, list(payloads)))
        if len(self.calls) == 1:
            self.release.wait(30)
        return [(key, p) for p in payloads]


def test_a_lone_request_does_not_wait_for_the_window():
    async def main():
        batcher = Batcher(Recorder(), max_batch=16, timeout_ms=WINDOW_MS)
        t = time.perf_counter()
        plain = await batcher.submit("k", 1)
        announced = batcher.arrival()  # as the server does: announced on arrival, done on submitting
        pair = await batcher.submit_many([("c", 2), ("p", 2)], announced)
        return time.perf_counter() - t, plain, pair, batcher

    took, plain, pair, batcher = asyncio.run(main())
    assert took < 5.0  # not 30 s
    assert plain == ("k", 1) and pair == [("c", 2), ("p", 2)]
    assert batcher.stats.waited == 0 and batcher.arriving == 0
    assert batcher.stats.gathers == 2  # a request's two calls share one gathered batch


def test_requests_announced_as_arriving_are_waited_for_and_grouped():
    runner = Recorder()

    async def main():
        batcher = Batcher(runner, max_batch=16, timeout_ms=WINDOW_MS)
        arrivals = [batcher.arrival() for _ in range(4)]  # four requests reading their uploads

        async def late(i):
            await asyncio.sleep(0.05 * i)  # each submits a little later than the one before
            return await batcher.submit("k", i, arrivals[i])

        t = time.perf_counter()
        out = await asyncio.gather(*(late(i) for i in range(4)))
        return out, time.perf_counter() - t, batcher

    out, took, batcher = asyncio.run(main())
    assert out == [("k", i) for i in range(4)]
    assert [len(p) for _, p in runner.calls] == [4]  # the first waited for the three still arriving ...
    assert took < 5.0 and batcher.stats.waited == 1  # ... only until they were in, not for the window


def test_a_request_that_ends_without_submitting_is_not_waited_for():
    async def main():
        batcher = Batcher(Recorder(), max_batch=16, timeout_ms=WINDOW_MS)
        bad = batcher.arrival()  # e.g. a request whose upload is not an image

        async def refuse():
            await asyncio.sleep(0.05)
            bad.done()
            bad.done()  # idempotent

        t = time.perf_counter()
        got, _ = await asyncio.gather(batcher.submit("k", 1), refuse())
        return got, time.perf_counter() - t, batcher

    got, took, batcher = asyncio.run(main())
    assert got == ("k", 1) and took < 5.0 and batcher.arriving == 0


def test_requests_queued_while_the_model_is_busy_form_the_next_batch():
    runner = Recorder(hold_first=True)

    async def main():
        batcher = Batcher(runner, max_batch=16, timeout_ms=WINDOW_MS)
        first = asyncio.ensure_future(batcher.submit("k", 0))
        while not runner.calls:  # the first request runs alone, at once ...
            await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(batcher.submit("k", i)) for i in range(1, 6)]  # ... these queue meanwhile
        await asyncio.sleep(0.05)
        runner.release.set()
        return await asyncio.gather(first, *rest), batcher

    out, batcher = asyncio.run(main())
    assert out == [("k", i) for i in range(6)]
    assert [len(p) for _, p in runner.calls] == [1, 5] and batcher.stats.largest == 5


def test_max_batch_bounds_each_model_call_and_a_requests_calls_stay_together():
    runner = Recorder(hold_first=True)

    async def main():
        batcher = Batcher(runner, max_batch=4, timeout_ms=WINDOW_MS)
        first = asyncio.ensure_future(batcher.submit("warm", 0))
        while not runner.calls:
            await asyncio.sleep(0.01)
        # six comparisons (answer + P(A better) each) and a score queue up behind the busy model
        pairs = [asyncio.ensure_future(batcher.submit_many([("compare", i), ("prefer", i)])) for i in range(6)]
        score = asyncio.ensure_future(batcher.submit("score", 99))
        await asyncio.sleep(0.05)
        runner.release.set()
        return await asyncio.gather(first, *pairs, score), batcher

    (_, *pairs, score), batcher = asyncio.run(main())
    assert pairs == [[("compare", i), ("prefer", i)] for i in range(6)] and score == ("score", 99)
    assert runner.calls[1:] == [("compare", [0, 1, 2, 3]), ("prefer", [0, 1, 2, 3]),  # 4 per call, at most
                                ("compare", [4, 5]), ("prefer", [4, 5]), ("score", [99])]
    assert list(batcher.stats.gathered) == [1, 8, 5]


def test_the_window_must_not_be_negative():
    with pytest.raises(ValueError, match="timeout_ms must be >= 0"):
        Batcher(lambda k, p: p, timeout_ms=-1)


# ---- over HTTP ---------------------------------------------------------------------------------

def _files(**arrays) -> dict:
    return {k: (f"{k}.png", png(v), "image/png") for k, v in arrays.items()}


@pytest.fixture(scope="module")
def slow_window_server(ckpt):  # noqa: F811
    from depictqa.infer.assessor import Assessor
    from depictqa.serve import ServeConfig, create_app

    served = Assessor.from_pretrained(ckpt, device="cpu", batch_size=16)
    app = create_app(served, ServeConfig(max_batch=16, batch_timeout_ms=WINDOW_MS, checkpoint=str(ckpt)))
    with Server(app) as running:
        running.app, running.assessor = app, served
        yield running


def test_over_http_a_lone_request_is_answered_without_the_window(slow_window_server, images):
    server = slow_window_server
    httpx.post(server.url + "/v1/score", files=_files(image=images[0]), timeout=60).raise_for_status()  # warm
    for files in (_files(image=images[1]), _files(image_a=images[2], image_b=images[3])):
        endpoint = "/v1/score" if "image" in files else "/v1/compare"
        t = time.perf_counter()
        r = httpx.post(server.url + endpoint, files=files, data={"style": "single"}, timeout=60)
        assert r.status_code == 200, r.text
        assert time.perf_counter() - t < 10.0  # the window is 30 s
    bad = httpx.post(server.url + "/v1/score", files={"image": ("x.txt", b"not an image", "text/plain")}, timeout=60)
    assert bad.status_code == 400
    assert server.app.state.batcher.arriving == 0  # a refused request is not waited for


def test_over_http_concurrent_requests_are_still_grouped_and_equal_one_at_a_time(slow_window_server, images):
    server = slow_window_server
    stats = server.app.state.batcher.stats
    pairs = [(images[i % 5], images[(i + 2) % 5]) for i in range(12)]
    largest_before = stats.largest

    def ask(pair):
        a, b = pair
        return httpx.post(server.url + "/v1/compare", files=_files(image_a=a, image_b=b),
                          data={"style": "single"}, timeout=120).json()

    t = time.perf_counter()
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(ask, pairs))
    took = time.perf_counter() - t
    assert took < 25.0  # no request waited out the 30 s window
    assert max(largest_before, stats.largest) > 1  # requests were grouped
    alone = [server.assessor.compare(a, b, style="single", max_new_tokens=16) for a, b in pairs[:5]]
    assert [r["text"] for r in answers[:5]] == [x.text for x in alone]
    assert [r["confidence"] for r in answers[:5]] == pytest.approx([x.confidence for x in alone])
    assert [r["p_a_better"] for r in answers[:5]] == pytest.approx([server.assessor.prefer(a, b).p_a
                                                                    for a, b in pairs[:5]], abs=1e-5)
    health = httpx.get(server.url + "/healthz").json()["batches"]
    assert health["gathered"] >= 1 and health["calls"] >= health["gathered"]
