"""Load test of `depictqa serve`: requests/s and p50/p99 latency at concurrency 1, 8 and 32, with
batching on (--max-batch 16) and off (--max-batch 1), over HTTP on loopback.

    python benchmarks/serve_load.py [--ckpt demo_out/run/checkpoints/last] [--requests 96]

Each request is a brief-style `POST /v1/compare` of two 128x128 images with a reference (an answer
plus P(A better), as the web page asks). Results go to benchmarks/results/serve_cpu.json with the
hardware named. Without --ckpt the demo checkpoint is used when it exists, else a tiny random
model built as the tests build theirs (recorded in the JSON).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, 128)[None, :, None] * np.ones((128, 1, 3))
    arr = np.clip(base + rng.normal(0, 10 * (seed % 4), base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


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


def measure(url: str, concurrency: int, n: int) -> dict:
    import httpx

    files = {"reference": ("r.png", _png(0), "image/png"), "image_a": ("a.png", _png(1), "image/png"),
             "image_b": ("b.png", _png(2), "image/png")}
    latencies: list[float] = []

    def one(_: int) -> None:
        t = time.perf_counter()
        r = httpx.post(url + "/v1/compare", files=files, data={"style": "brief"}, timeout=300)
        r.raise_for_status()
        latencies.append(time.perf_counter() - t)

    one(0)  # warm-up
    latencies.clear()
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return {"concurrency": concurrency, "requests": n, "requests_per_s": round(n / wall, 3),
            "p50_s": round(statistics.median(latencies), 3), "p99_s": round(q[98], 3)}


def main() -> int:
    import tempfile

    from depictqa.infer.assessor import Assessor
    from depictqa.serve import ServeConfig, create_app
    from tests.serve.conftest import Server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_cpu.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, which = _checkpoint(args.ckpt, Path(tmp))
        assessor = Assessor.from_pretrained(ckpt, device="cpu", batch_size=16)
        rows = []
        for max_batch in (16, 1):
            cfg = ServeConfig(max_batch=max_batch, batch_timeout_ms=10)
            with Server(create_app(assessor, cfg)) as server:
                for c in (1, 8, 32):
                    row = {"batching": max_batch > 1, "max_batch": max_batch,
                           **measure(server.url, c, max(args.requests if c > 1 else args.requests // 4, c))}
                    print(row, flush=True)
                    rows.append(row)
    on = {r["concurrency"]: r for r in rows if r["batching"]}
    result = {"benchmark": "serve_load", "checkpoint": which, "endpoint": "POST /v1/compare (brief, with reference, 128 px)",
              "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
              "rows": rows,
              "speedup_c32_vs_c1_batched": round(on[32]["requests_per_s"] / on[1]["requests_per_s"], 2),
              "targets": {"speedup_c32_vs_c1_batched": ">= 3", "p99_c32_batched_s": "< 2"}}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
