"""``depictqa compare``: which of two images is better, and why, with or without a reference."""

from __future__ import annotations

import argparse

from depictqa.commands.inference_args import (add_generation_arguments, add_model_arguments, generation_kwargs,
                                              open_assessor, print_answer)

HELP = "Compare two images' quality (Image A vs Image B) with a trained checkpoint."
EXAMPLES = """  depictqa compare a.png b.png --ckpt runs/tiny/checkpoints/last
  depictqa compare a.png b.png --ref pristine.png --style single --ckpt CKPT --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_a", help="Image A")
    parser.add_argument("image_b", help="Image B")
    parser.add_argument("--ref", default=None, help="a pristine reference image (full-reference comparison)")
    parser.add_argument("--query", default=None, help="ask this question instead of the style's default")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_model_arguments(parser)
    add_generation_arguments(parser)


def run(args: argparse.Namespace) -> int:
    assessor, code = open_assessor(args, [("image_a", args.image_a), ("image_b", args.image_b), ("--ref", args.ref)])
    if assessor is None:
        return code
    result = assessor.compare(args.image_a, args.image_b, reference=args.ref, style=args.style, query=args.query,
                              **generation_kwargs(args))
    return print_answer(result, args.json)
