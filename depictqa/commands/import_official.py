"""``depictqa import-official``: a released DepictQA ``ckpt.pt`` -> a depictqa checkpoint folder."""

from __future__ import annotations

import argparse
import sys

from depictqa.commands.common import fail

HELP = "Import a released DepictQA checkpoint (official ckpt.pt) as a depictqa checkpoint folder."
EXAMPLES = """  depictqa import-official DepictQA-Wild/ckpt.pt --recipe recipes/depictqa_wild.yaml --out ckpt/wild
  depictqa import-official Abstractor/ckpt.pt --recipe recipes/wild_abstractor.yaml --out ckpt/wild_abs
  depictqa import-official ckpt.pt --recipe recipes/depictqa_v1.yaml --out ckpt/v1 \\
      model.llm.path=/models/vicuna-7b-v1.5 model.encoder.path=/models/clip-vit-large-patch14
  then:  depictqa assess photo.png --ckpt ckpt/wild     depictqa fit RECIPE --init ckpt/wild"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", metavar="CKPT.pt", help="the released checkpoint (tensors only; nothing is unpickled)")
    parser.add_argument("--recipe", required=True, metavar="YAML",
                        help="the recipe of the released model (its projector, template and base weights)")
    parser.add_argument("--out", required=True, metavar="DIR", help="new checkpoint folder to write")
    parser.add_argument("recipe_overrides", nargs="*", metavar="key=value",
                        help="recipe overrides, e.g. model.llm.path=/local/vicuna")


def run(args: argparse.Namespace) -> int:
    from depictqa.config import RecipeError, load_recipe
    from depictqa.official import OfficialImportError, import_official

    try:
        recipe = load_recipe(args.recipe, overrides=args.recipe_overrides, check_local=False)
        out = import_official(args.ckpt, recipe, args.out)
    except (RecipeError, OfficialImportError) as err:
        return fail(str(err))
    if (out / "tokenizer").is_dir():
        print(f"{out}/tokenizer: the Vicuna tokenizer set to give the ids of the slow LlamaTokenizer the released "
              "model was trained with (transformers 4.x, legacy mode)", file=sys.stderr)
    print(f"wrote {out}: use it with depictqa assess/compare/infer --ckpt {out}, or depictqa fit RECIPE --init {out}",
          file=sys.stderr)
    return 0
