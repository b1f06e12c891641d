"""Load test of `depictqa serve`: requests/s and p50/p99 latency at concurrency 1, 8 and 32, with
batching on (--max-batch 16) and off (--max-batch 1), over HTTP on loopback.

    python benchmarks/serve_load.py [--ckpt demo_out/run/checkpoints/last] [--requests 96]

Each request is a `POST /v1/compare` of two 128x128 images with a reference (an answer plus
P(A better), as the web page asks), drawn from 6 distinct images so that requests differ. Two
workloads: `brief` (the page's default; an answer of this length gets the detail confidence, one
sentence-embedding encode per answer token, which is per-request work that batching cannot share)
and `single` (a one-label answer whose confidence comes from the model's token probabilities: the
batched model call is all the work). Results go to benchmarks/results/serve_cpu.json with the
hardware named. The server is `depictqa serve` in its own process. Without --ckpt the demo
checkpoint is used when it exists, else a tiny random model built as the tests build theirs (recorded in the JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _png(seed: int, distinct: bool = False) -> bytes:
    """A 128x128 gradient with seed-dependent noise (never noise-free when ``distinct``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, 128)[None, :, None] * np.ones((128, 1, 3))
    arr = np.clip(base + rng.normal(0, 10 * (seed % 4) + 5 * distinct, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _triples(n: int, distinct: bool) -> list[tuple[bytes, bytes, bytes]]:
    """(reference, A, B) of each request: from 6 images (default), or every image its own."""
    if distinct:
        return [(_png(3 * i, True), _png(3 * i + 1, True), _png(3 * i + 2, True)) for i in range(n)]
    pngs = [_png(seed) for seed in range(6)]
    return [(pngs[0], pngs[1 + i % 5], pngs[1 + (i + 2) % 5]) for i in range(n)]


def _checkpoint(path: str | None, tmp: Path) -> tuple[str, str]:
    if path:
        return path, "given"
    demo = ROOT / "demo_out" / "run" / "checkpoints" / "last"
    if demo.exists():
        return str(demo), "the demo checkpoint (recipes/tiny.yaml, trained by make demo)"
    import torch

    from depictqa.build import build_model
    from depictqa.checkpoint import save_pretrained
    from tests.conftest import TEXTS, tiny_recipe

    recipe = tiny_recipe()
    torch.manual_seed(0)
    return str(save_pretrained(build_model(recipe, texts=TEXTS), recipe, tmp / "ckpt")), "tiny random model (tests)"


def measure(url: str, concurrency: int, n: int, style: str, distinct: bool = False) -> dict:
    """``n`` requests from ``concurrency`` asyncio workers over ONE pooled ``httpx.AsyncClient``.

    The client is one light event loop in this process (not ``concurrency`` threads each opening a
    connection per request), so on a small machine it takes as little CPU from the server as it can.
    """
    import asyncio

    import httpx

    triples = _triples(n + concurrency, distinct)  # made before the clock starts

    async def run() -> tuple[list[float], float]:
        latencies: list[float] = []
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
            async def one(i: int) -> float:
                ref, a, b = triples[i]
                files = {"reference": ("r.png", ref, "image/png"), "image_a": ("a.png", a, "image/png"),
                         "image_b": ("b.png", b, "image/png")}
                t = time.perf_counter()
                r = await client.post("/v1/compare", files=files, data={"style": style})
                r.raise_for_status()
                return time.perf_counter() - t

            await asyncio.gather(*(one(n + i) for i in range(concurrency)))  # warm-up: connections, first batch
            queue = iter(range(n))

            async def worker() -> None:
                for i in queue:  # each worker keeps exactly one request in flight
                    latencies.append(await one(i))

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return latencies, time.perf_counter() - start

    latencies, wall = asyncio.run(run())
    q = statistics.quantiles(latencies, n=100)
    return {"concurrency": concurrency, "requests": n, "requests_per_s": round(n / wall, 3),
            "p50_s": round(statistics.median(latencies), 3), "p99_s": round(q[98], 3)}


@contextlib.contextmanager
def served(ckpt: str, max_batch: int) -> Iterator[str]:
    """`depictqa serve` in its own process (the load generator here must not share its GIL)."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "depictqa.cli", "serve", "--ckpt", ckpt, "--device", "cpu", "--port", str(port),
           "--max-batch", str(max_batch), "--batch-timeout-ms", "10"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"depictqa serve exited with {proc.returncode}: {' '.join(cmd)}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--styles", default="single,brief", help="answer styles to load-test, comma-separated")
    parser.add_argument("--concurrency", default="1,8,32", help="concurrency levels, comma-separated")
    parser.add_argument("--max-batch", default="16,1", help="server --max-batch values (1: batching off)")
    parser.add_argument("--distinct-images", action="store_true",
                        help="every request its own three images (default: drawn from 6, so requests repeat)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_cpu.json"))
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, which = _checkpoint(args.ckpt, Path(tmp))
        rows = []
        for max_batch in [int(m) for m in args.max_batch.split(",")]:
            with served(ckpt, max_batch) as url:
                for style in args.styles.split(","):
                    for c in [int(c) for c in args.concurrency.split(",")]:
                        n = max(args.requests if c > 1 else args.requests // 4, c)
                        row = {"style": style, "batching": max_batch > 1, "max_batch": max_batch,
                               **measure(url, c, n, style, args.distinct_images)}
                        print(row, flush=True)
                        rows.append(row)
    summary = {}
    for style in args.styles.split(","):
        on = {r["concurrency"]: r for r in rows if r["batching"] and r["style"] == style}
        if 1 not in on or 32 not in on:
            continue
        summary[style] = {"speedup_c32_vs_c1_batched": round(on[32]["requests_per_s"] / on[1]["requests_per_s"], 2),
                          "p99_c32_batched_s": on[32]["p99_s"]}
    result = {"benchmark": "serve_load", "checkpoint": which,
              "endpoint": "POST /v1/compare (with reference, 128 px, "
                          + ("every request its own 3 images)" if args.distinct_images else "6 distinct images)"),
              "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
              "load_average_before": load_before,
              "rows": rows, "summary": summary,
              "targets": {"speedup_c32_vs_c1_batched": ">= 3", "p99_c32_batched_s": "< 2"}}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
