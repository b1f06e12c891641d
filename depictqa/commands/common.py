"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="+", metavar="RECIPE|OVERLAY|key=value",
                        help="a base recipe, overlays merged left to right, then key=value overrides")


def load_from_args(items: list[str], check_local: bool = True) -> Any:
    """Split positional items into YAML paths and dotlist overrides; load and validate."""
    from depictqa.config import load_recipe

    paths = [i for i in items if "=" not in i]
    overrides = [i for i in items if "=" in i]
    return load_recipe(*paths, overrides=overrides, check_local=check_local)


def fail(message: str, code: int = 2) -> int:
    print(f"depictqa: error: {message}", file=sys.stderr)
    return code
