"""``depictqa export``: a checkpoint as a folder to share (upload it as a Hugging Face model repo)."""

from __future__ import annotations

import argparse

HELP = "write a checkpoint as a shareable folder with a model card (README.md), ready to upload to the hub"
EXAMPLES = """  depictqa export runs/tiny/checkpoints/last --out shared/tiny-depictqa
  depictqa export demo_out/run --out shared/demo          # a run folder: its checkpoints/last
  depictqa export runs/wild/checkpoints/step-0030000 --out shared/wild --results reports/wild/results.json
  hf upload me/tiny-depictqa shared/tiny-depictqa          # then depictqa.load_pretrained("me/tiny-depictqa")"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="DIR", help="a checkpoint folder, or a run folder (its checkpoints/last)")
    parser.add_argument("--out", required=True, metavar="HFDIR", help="the folder to write (new or empty)")
    parser.add_argument("--results", default=None, metavar="JSON",
                        help="evaluation results to put in the card (default: a results.json beside the run, "
                             "as `depictqa evaluate --out` and `depictqa demo` write it)")


def run(args: argparse.Namespace) -> int:
    from depictqa.checkpoint import CheckpointError
    from depictqa.commands.common import fail
    from depictqa.model_card import export

    try:
        out = export(args.checkpoint, args.out, results=args.results)
    except (CheckpointError, FileExistsError, FileNotFoundError, ValueError) as err:
        return fail(str(err))
    print(f"wrote {out} (model card: {out / 'README.md'})")
    return 0
