"""Samples/s of ``depictqa synth`` (224-px samples, default mix) with 1 and 2 workers.

Run: ``python benchmarks/synth_throughput.py [--samples 600] [--repeats 1] [--out benchmarks/results/synth_throughput_cpu.json]``.
Time includes distortion, answer writing, PNG encoding and tar writing (not test metas).
Each run also records the 1-minute load average just before it (other jobs on the machine slow
it down) and the CPU seconds spent per sample by this process and its workers, which is much
less sensitive to that load than wall-clock throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time

from depictqa.synth.build import build_dataset


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _loadavg() -> float | None:
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1, help="runs per worker count (all recorded)")
    parser.add_argument("--out", default="benchmarks/results/synth_throughput_cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: imports, embedded photos, caches
        build_dataset(tmp, samples=20, size=args.size, workers=1, seed=1)
    runs = []
    for _ in range(args.repeats):
        for w in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                load = _loadavg()
                c0, t0 = _cpu_seconds(), time.perf_counter()
                build_dataset(tmp, samples=args.samples, size=args.size, workers=w, seed=0)
                dt, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
            runs.append({"workers": w, "samples": args.samples, "seconds": round(dt, 2),
                         "samples_per_s": round(args.samples / dt, 1),
                         "cpu_ms_per_sample": round(1000 * cpu / args.samples, 2), "loadavg_1min_before": load})
            print(runs[-1], flush=True)
    result = {"benchmark": "synth_throughput", "size": args.size, "target_samples_per_s": 100,
              "hardware": f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU",
              "python": platform.python_version(), "runs": runs}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
