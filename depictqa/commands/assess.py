"""``depictqa assess``: describe the quality of one image, with or without a reference."""

from __future__ import annotations

import argparse

from depictqa.commands.inference_args import (add_generation_arguments, add_model_arguments, generation_kwargs,
                                              open_assessor, print_answer)

HELP = "Assess one image's quality (distortions, severity) with a trained checkpoint."
EXAMPLES = """  depictqa assess photo.jpg --ckpt runs/tiny/checkpoints/last
  depictqa assess distorted.png --ref pristine.png --style detail --ckpt CKPT --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the image to assess")
    parser.add_argument("--ref", default=None, help="a pristine reference image (full-reference assessment)")
    parser.add_argument("--query", default=None, help="ask this question instead of the style's default")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_model_arguments(parser)
    add_generation_arguments(parser)


def run(args: argparse.Namespace) -> int:
    assessor, code = open_assessor(args, [("image", args.image), ("--ref", args.ref)])
    if assessor is None:
        return code
    result = assessor.assess(args.image, reference=args.ref, style=args.style, query=args.query,
                             **generation_kwargs(args))
    return print_answer(result, args.json)
