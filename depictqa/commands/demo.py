"""``depictqa demo``: the embedded default end to end."""

from __future__ import annotations

import argparse

HELP = "synthesise data, train the tiny recipe, evaluate against PSNR/SSIM, show answers, write a report"
EXAMPLES = """  depictqa demo                                  # ~10 minutes on 2 CPU cores, writes demo_out/report.md
  depictqa demo --minutes 3 --samples 3000       # quicker, weaker
  depictqa demo --recipe recipes/small_gpu.yaml --samples 40000 --size 128 --out demo_gpu   # on a GPU
  depictqa demo --fresh                          # ignore the data and checkpoint of an earlier run"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--minutes", type=float, default=10.0, help="total time budget (default: 10)")
    parser.add_argument("--recipe", default=None, help="recipe to train (default: recipes/tiny.yaml)")
    parser.add_argument("--samples", type=int, default=20000, help="training samples to synthesise")
    parser.add_argument("--test-samples", type=int, default=5600,
                        help="held-out samples, spread over 14 test files (default: 5600, 400 per file)")
    parser.add_argument("--size", type=int, default=64, help="synthesised image size in pixels")
    parser.add_argument("--workers", type=int, default=None, help="synthesis processes (default: the CPU count, at most 16)")
    parser.add_argument("--fresh", action="store_true", help="re-synthesise and retrain")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides")


def run(args: argparse.Namespace) -> int:
    from depictqa.demo import run_demo

    run_demo(args.out, minutes=args.minutes, recipe=args.recipe, samples=args.samples,
             test_samples=args.test_samples, size=args.size, fresh=args.fresh, overrides=args.overrides,
             workers=args.workers)
    return 0
