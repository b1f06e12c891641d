"""``depictqa validate``: resolve and check a recipe, print it and the parameter counts.

Before building, every model the recipe names by hub id is looked up in the local cache and, if
absent, on the hub with a short timeout: offline, the command names the missing model and exits 2
within seconds instead of retrying downloads.
"""

from __future__ import annotations

import argparse

HELP = "resolve, validate and print a recipe with parameter counts per part (no training)"
EXAMPLES = """  depictqa validate recipes/tiny.yaml
  depictqa validate recipes/depictqa_v1.yaml --no-build      # checks only; needs no weights
  depictqa validate recipes/depictqa_v1.yaml --no-build --no-local-checks   # nor its shards or GPUs here
  depictqa validate recipes/depictqa_wild.yaml recipes/ablations/mlp_projector.yaml"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from depictqa.commands.common import add_recipe_arguments

    add_recipe_arguments(parser)
    parser.add_argument("--no-build", action="store_true", help="validate only; do not build the model")
    parser.add_argument("--no-local-checks", action="store_true",
                        help="skip what depends on this machine: that the shard files exist and the "
                             "accelerator is available")


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from depictqa.commands.common import fail, load_from_args
    from depictqa.config import RecipeError

    try:
        recipe = load_from_args(args.recipe, check_local=False)
    except RecipeError as err:
        return fail(str(err))
    problems = [] if args.no_local_checks else _local_problems(recipe)
    if not args.no_build:
        from depictqa.hub import missing_models

        missing = missing_models(recipe.model)
        if missing:  # said at once, before anything is built or downloaded
            problems.append(f"cannot build the model: {'; '.join(missing)}. Fetch each where there is network "
                            "(`hf download ID`) or name a local folder; `--no-build` checks the recipe without it")
    if problems:
        return fail("\n  ".join(problems))
    print(OmegaConf.to_yaml(recipe, resolve=True))
    if args.no_build:
        print("recipe is valid")
        return 0
    from depictqa.build import build_model

    texts = ["a sample text to size the tokenizer"] * 4
    try:
        model = build_model(recipe, texts=texts)
    except OSError as err:  # a download that failed after all (a file the cache lacks, a dropped connection)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return fail(f"cannot build the model: {first}; `--no-build` checks the recipe without building it")
    counts = model.parameter_counts()
    width = max(10, *(len(part) for part in counts))
    print(f"{'part':<{width}} {'total':>14} {'trainable':>14}")
    totals = [0, 0]
    for part, (total, trainable) in counts.items():
        print(f"{part:<{width}} {total:>14,} {trainable:>14,}")
        totals[0] += total
        totals[1] += trainable
    print(f"{'all':<{width}} {totals[0]:>14,} {totals[1]:>14,}")
    return 0


def _local_problems(recipe: object) -> list[str]:
    """What this machine lacks for the recipe (shards, accelerator), as messages."""
    from depictqa.config import RecipeError
    from depictqa.recipe_checks import check_local_resources

    try:
        check_local_resources(recipe)
    except RecipeError as err:
        return [str(err)]
    return []
