"""Load test of `depictqa serve`: requests/s and p50/p99 latency at concurrency 1, 8 and 32, with
batching on (--max-batch 16) and off (--max-batch 1), over HTTP on loopback.

    python benchmarks/serve_load.py [--ckpt demo_out/run/checkpoints/last] [--requests 200] [--out x.json]

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


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def measure(url: str, concurrency: int, n: int, style: str, distinct: bool = False, warmup: int | None = None,
            server_pid: int | None = None) -> dict:
    """Requests/s and latency over ``n`` requests at a steady ``concurrency``.

    ``concurrency`` asyncio workers share ONE pooled ``httpx.AsyncClient`` (one light event loop in
    this process, not a thread and a connection per request, so on a small machine it takes as
    little CPU from the server as it can), each keeping exactly one request in flight. They send
    ``warmup`` requests first (default ``max(2 * concurrency, 16)``: connections, the first batches),
    then the ``n`` measured ones, then ``concurrency`` more so that every worker is still busy when
    the n-th measured one completes: the window runs from the completion of the last warm-up request
    to that of the n-th measured one, at full concurrency throughout (no ramp-up, no drain), and
    the latencies are those of the ``n`` requests completed in it. CPU seconds of this client and
    of the server over the window are reported per request.
    """
    import asyncio

    import httpx

    warmup = max(2 * concurrency, 16) if warmup is None else warmup
    total = warmup + n + concurrency
    triples = _triples(total, distinct)  # made before the clock starts
    files_of = [{"reference": ("r.png", ref, "image/png"), "image_a": ("a.png", a, "image/png"),
                 "image_b": ("b.png", b, "image/png")} for ref, a, b in triples]

    async def run() -> tuple[list[float], float, float, float | None]:
        done: list[tuple[float, float]] = []  # (latency, completion time), in completion order
        marks: dict[str, tuple[float, float, float | None]] = {}  # window edge -> (time, client cpu, server cpu)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
            queue = iter(range(total))

            async def worker() -> None:
                for i in queue:
                    t = time.perf_counter()
                    r = await client.post("/v1/compare", files=files_of[i], data={"style": style})
                    r.raise_for_status()
                    now = time.perf_counter()
                    done.append((now - t, now))
                    if len(done) in (warmup, warmup + n):
                        edge = "start" if len(done) == warmup else "end"
                        marks[edge] = (now, time.process_time(), server_pid and _cpu_seconds(server_pid))

            if warmup == 0:
                marks["start"] = (time.perf_counter(), time.process_time(), server_pid and _cpu_seconds(server_pid))
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        (t0, c0, s0), (t1, c1, s1) = marks["start"], marks["end"]
        server = None if s0 is None or s1 is None else s1 - s0
        return [lat for lat, _ in done[warmup:warmup + n]], t1 - t0, c1 - c0, server

    latencies, wall, client_cpu, server_cpu = asyncio.run(run())
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    row = {"concurrency": concurrency, "requests": n, "warmup": warmup, "requests_per_s": round(n / wall, 3),
           "p50_s": round(statistics.median(latencies), 3), "p99_s": round(q[98], 3),
           "max_s": round(max(latencies), 3), "client_cpu_ms_per_request": round(1000 * client_cpu / n, 2)}
    if server_cpu is not None:
        row["server_cpu_ms_per_request"] = round(1000 * server_cpu / n, 2)
    return row


def _batches(url: str) -> dict:
    import httpx

    return httpx.get(url + "/healthz", timeout=30).json().get("batches", {})


@contextlib.contextmanager
def served(ckpt: str, max_batch: int, timeout_ms: float = 10.0, torch_threads: int | None = None
           ) -> Iterator[tuple[str, int]]:
    """`depictqa serve` in its own process (the load generator here must not share its GIL):
    (url, pid). ``torch_threads``: its OMP_NUM_THREADS (default: inherited)."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "depictqa.cli", "serve", "--ckpt", ckpt, "--device", "cpu", "--port", str(port),
           "--max-batch", str(max_batch), "--batch-timeout-ms", f"{timeout_ms:g}"]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(torch_threads)} if torch_threads else {}))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--requests", type=int, default=200,
                        help="measured requests per concurrency level (default: 200, so p99 is the 2nd-3rd slowest)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="unmeasured requests first, per level (default: max(2 x concurrency, 16))")
    parser.add_argument("--styles", default="single,brief", help="answer styles to load-test, comma-separated")
    parser.add_argument("--concurrency", default="1,8,32", help="concurrency levels, comma-separated")
    parser.add_argument("--max-batch", default="16,1", help="server --max-batch values (1: batching off)")
    parser.add_argument("--batch-timeout-ms", type=float, default=10.0, help="server --batch-timeout-ms")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="OMP_NUM_THREADS of the server process (default: inherited, i.e. torch's own choice)")
    parser.add_argument("--distinct-images", action="store_true",
                        help="every request its own three images (default: drawn from 6, so requests repeat)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_cpu.json"))
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, which = _checkpoint(args.ckpt, Path(tmp))
        rows = []
        for max_batch in [int(m) for m in args.max_batch.split(",")]:
            with served(ckpt, max_batch, args.batch_timeout_ms, args.torch_threads) as (url, pid):
                for style in args.styles.split(","):
                    for c in [int(c) for c in args.concurrency.split(",")]:
                        before = _batches(url)
                        measured = measure(url, c, args.requests, style, args.distinct_images, args.warmup, pid)
                        after = _batches(url)
                        calls = after.get("calls", 0) - before.get("calls", 0)
                        row = {"style": style, "batching": max_batch > 1, "max_batch": max_batch, **measured}
                        if calls:  # warm-up included; a comparison is two calls (answer, P(A better))
                            row["mean_call_size"] = round((after["requests"] - before["requests"]) / calls, 2)
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
              "load_average_before": load_before, "load_average_after": round(os.getloadavg()[0], 2),
              "server": {"batch_timeout_ms": args.batch_timeout_ms, "torch_threads": args.torch_threads or "default"},
              "rows": rows, "summary": summary,
              "targets": {"speedup_c32_vs_c1_batched": ">= 3", "p99_c32_batched_s": "< 2"}}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
