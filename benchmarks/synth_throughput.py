"""Samples/s of ``depictqa synth`` (224-px samples, default mix) with 1 and 2 workers.

Run: ``python benchmarks/synth_throughput.py [--samples 600] [--out benchmarks/results/synth_throughput_cpu.json]``.
Time includes distortion, answer writing, PNG encoding and tar writing (not test metas).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from depictqa.synth.build import build_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default="benchmarks/results/synth_throughput_cpu.json")
    args = parser.parse_args()
    runs = []
    for w in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            build_dataset(tmp, samples=args.samples, size=args.size, workers=w, seed=0)
            dt = time.perf_counter() - t0
        runs.append({"workers": w, "samples": args.samples, "seconds": round(dt, 2),
                     "samples_per_s": round(args.samples / dt, 1)})
        print(runs[-1])
    result = {"benchmark": "synth_throughput", "size": args.size, "target_samples_per_s": 100,
              "hardware": f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU",
              "python": platform.python_version(), "runs": runs}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
