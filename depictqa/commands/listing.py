"""``depictqa list``: registered components with a one-line description each."""

from __future__ import annotations

import argparse

HELP = "list registered encoders, projectors, llms (or distortions, templates)"
EXAMPLES = """  depictqa list encoders
  depictqa list projectors
  depictqa list llms"""
FAMILIES = ("encoders", "projectors", "llms", "templates", "distortions")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("family", choices=FAMILIES, nargs="?", default=None)


def run(args: argparse.Namespace) -> int:
    import depictqa
    from depictqa.prompts import TEMPLATES

    families = [args.family] if args.family else ["encoders", "projectors", "llms"]
    for family in families:
        print(f"{family}:")
        if family == "templates":
            rows = {t: "" for t in TEMPLATES}
        elif family == "distortions":
            from depictqa.synth import list_distortions

            rows = {d.name: f"{d.category} ({d.phrase})" for d in list_distortions()}
        else:
            rows = getattr(depictqa, family).describe()
        width = max(len(n) for n in rows)
        for name, text in rows.items():
            print(f"  {name:<{width}}  {text}")
    return 0
