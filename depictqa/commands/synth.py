"""``depictqa synth``: build ground-truth-informed synthetic IQA data (DQ-495K recipe)."""

from __future__ import annotations

import argparse

HELP = "Build synthetic IQA training shards and held-out test metas from known distortions."
EXAMPLES = """  depictqa synth --out data/synth --samples 20000 --test-samples 1400 --workers 8
  depictqa synth --out data/mine --samples 5000 --images ~/photos --seed 1 --size 224
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (brief/, detailed/, regulariser/, test/)")
    parser.add_argument("--samples", type=int, required=True, help="number of training samples")
    parser.add_argument("--images", default=None, help="folder of your own pristine images (default: embedded)")
    parser.add_argument("--seed", type=int, default=0, help="seed; output is identical for any --workers")
    parser.add_argument("--workers", type=int, default=1, help="processes")
    parser.add_argument("--size", type=int, default=224, help="side of the square crops, px")
    parser.add_argument("--test-samples", type=int, default=0, help="held-out test samples over all test files")
    parser.add_argument("--clean-rate", type=float, default=0.05, help="share of assess images left clean")
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--mix", choices=("dq", "demo"), default="dq",
                        help="task/style shares: dq (after DQ-495K) or demo (identification/A-B heavy)")
    parser.add_argument("--implementations", choices=("all", "base"), default="all",
                        help="all: each distortion made by one of its several implementations, its parameter "
                             "anywhere in the severity's band; base: one function and value per severity (official)")


def run(args: argparse.Namespace) -> int:
    import sys

    from depictqa.synth.build import build_dataset
    try:
        manifest = build_dataset(args.out, samples=args.samples, seed=args.seed, workers=args.workers,
                                 size=args.size, test_samples=args.test_samples, clean_rate=args.clean_rate,
                                 images=args.images, samples_per_shard=args.samples_per_shard,
                                 progress=True, mix=args.mix,
                                 implementations=args.implementations)
    except ValueError as err:
        print(f"depictqa synth: {err}", file=sys.stderr)
        return 2
    for line in manifest["skipped_images"]:
        print(f"skipped {line}", file=sys.stderr)
    print(f"wrote {args.samples} samples {manifest['per_source']} and {sum(manifest['test'].values())} "
          f"test samples to {args.out}")
    return 0
