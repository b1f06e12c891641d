"""``depictqa fit``: train a recipe."""

from __future__ import annotations

import argparse

HELP = "train a model from a recipe (base + overlays + key=value overrides)"
EXAMPLES = """  depictqa fit recipes/tiny.yaml data.sources.brief.shards=data/brief/shard-{000000..000003}.tar
  depictqa fit recipes/depictqa_wild.yaml recipes/ablations/mlp_projector.yaml trainer.num_nodes=4
  depictqa fit recipes/tiny.yaml --resume runs/tiny/checkpoints/last
  depictqa fit recipes/depictqa_wild.yaml --init ckpt/wild data.sources.brief.shards=my/*.tar   # fine-tune"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from depictqa.commands.common import add_recipe_arguments

    add_recipe_arguments(parser)
    parser.add_argument("--resume", metavar="DIR", help="continue the run saved in this checkpoint directory")
    parser.add_argument("--init", metavar="DIR",
                        help="start from this checkpoint's weights (e.g. from import-official) with a fresh "
                             "optimiser and step count: fine-tuning, not a resume")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the checkpoints an earlier run left in out_dir (refused without it)")


def run(args: argparse.Namespace) -> int:
    from depictqa.checkpoint import CheckpointError
    from depictqa.commands.common import fail, load_from_args
    from depictqa.config import RecipeError

    try:
        recipe = load_from_args(args.recipe)
    except RecipeError as err:
        return fail(str(err))
    from depictqa.data.mixer import DataQualityError
    from depictqa.train import fit

    try:
        last = fit(recipe, resume=args.resume, overwrite=args.overwrite, init=args.init)
    except (RecipeError, CheckpointError) as err:
        return fail(str(err))
    except DataQualityError as err:  # bad input data, not a bug: the message, no traceback
        return fail(_last_line(str(err)))
    print(f"checkpoint: {last}")
    return 0


def _last_line(message: str) -> str:
    """Raised in a DataLoader worker, the message carries the worker's traceback; its last line is
    ``...DataQualityError: <message>``."""
    line = message.strip().splitlines()[-1] if message.strip() else message
    return line.split("DataQualityError: ", 1)[-1]
