"""``depictqa assess``: describe the quality of one image, with or without a reference."""

from __future__ import annotations

import argparse
from pathlib import Path

from depictqa.infer.cli_common import (add_generation_arguments, add_model_arguments, check_checkpoint,
                                       check_generation_arguments, generation_kwargs, load_assessor, print_answer)

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
    from depictqa.commands.common import fail

    for name, path in (("image", args.image), ("--ref", args.ref)):
        if path is not None and not Path(path).is_file():
            return fail(f"{name} {path} does not exist")
    problem = check_generation_arguments(args) or check_checkpoint(args.ckpt)
    if problem:
        return fail(problem)
    from depictqa.checkpoint import CheckpointError

    try:
        assessor = load_assessor(args, batch_size=1)
    except CheckpointError as err:
        return fail(str(err))
    result = assessor.assess(args.image, reference=args.ref, style=args.style, query=args.query,
                             **generation_kwargs(args))
    return print_answer(result, args.json)
