"""A lone request with batching on against batching off, measured side by side.

    python benchmarks/serve_lone_request.py [--ckpt demo_out/run/checkpoints/last] [--requests 40] [--rounds 3]

Starts two `depictqa serve` processes over the same checkpoint, `--max-batch 16` and
`--max-batch 1`, and sends one `POST /v1/compare` (single style, with a reference) at a time,
alternating between them request by request (which goes first alternates too), so that both
see the same machine state. The first round warms up and is not counted. Writes the latencies'
p50 and mean per server to benchmarks/results/serve_lone_cpu.json with the hardware named.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import ROOT, _checkpoint, _triples, served  # noqa: E402


def main() -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None, help="checkpoint folder (default: the demo's, else a tiny random model)")
    parser.add_argument("--requests", type=int, default=40, help="requests per server per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the first one unmeasured (default: 3)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_lone_cpu.json"))
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, which = _checkpoint(args.ckpt, Path(tmp))
        with served(ckpt, 16) as (on, _), served(ckpt, 1) as (off, _):
            latencies: dict[str, list[float]] = {on: [], off: []}
            with httpx.Client(timeout=120) as client:
                for rnd in range(args.rounds):
                    for i, (ref, a, b) in enumerate(_triples(args.requests, False)):
                        for url in ((on, off) if i % 2 else (off, on)):
                            files = {"reference": ("r.png", ref, "image/png"), "image_a": ("a.png", a, "image/png"),
                                     "image_b": ("b.png", b, "image/png")}
                            t = time.perf_counter()
                            client.post(url + "/v1/compare", files=files, data={"style": "single"}).raise_for_status()
                            if rnd:
                                latencies[url].append(time.perf_counter() - t)
    rows = {name: {"requests": len(latencies[url]), "p50_ms": round(1000 * statistics.median(latencies[url]), 1),
                   "mean_ms": round(1000 * statistics.mean(latencies[url]), 1)}
            for name, url in (("batching_on", on), ("batching_off", off))}
    result = {"benchmark": "serve_lone_request", "checkpoint": which,
              "endpoint": "POST /v1/compare, style single, with reference, 128 px, one request at a time",
              "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
              "load_average_before": load_before, **rows}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
