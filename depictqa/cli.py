"""The ``depictqa`` command.

Each sub-command is a thin adapter in ``depictqa/commands/`` (argument parsing, then library
calls) exposing ``HELP`` (one line), ``EXAMPLES`` (shown by ``--help``), ``add_arguments(parser)``
and ``run(args) -> int``. Those modules import heavy libraries only inside ``run`` so that
``depictqa --help`` answers at once. A listed command whose module does not import is an error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

COMMANDS: dict[str, str] = {
    "fit": "depictqa.commands.fit",
    "validate": "depictqa.commands.validate",
    "synth": "depictqa.commands.synth",
    "convert": "depictqa.commands.convert",
    "infer": "depictqa.commands.infer",
    "evaluate": "depictqa.commands.evaluate",
    "assess": "depictqa.commands.assess",
    "compare": "depictqa.commands.compare",
    "list": "depictqa.commands.listing",
    "import-official": "depictqa.commands.import_official",
    "demo": "depictqa.commands.demo",
    "export": "depictqa.commands.export",
    "serve": "depictqa.commands.serve",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("depictqa")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depictqa",
        description="Descriptive image quality assessment with multimodal LLMs.",
        epilog="Run 'depictqa COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_path in COMMANDS.items():
        try:
            module = importlib.import_module(module_path)
        except ImportError as err:  # a listed command must exist: never drop one silently
            raise ImportError(f"depictqa command {name!r}: cannot import its module {module_path} ({err})",
                              name=module_path) from err
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           epilog="examples:\n" + module.EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse ends a variadic positional at the first option: `fit R --resume D key=val` leaves
        # key=val over. Recipe overrides may come after options; anything else is an error.
        overrides = all("=" in e and not e.startswith("-") for e in extra)
        target = next((a for a in ("recipe", "recipe_overrides") if isinstance(getattr(args, a, None), list)), None)
        if not overrides or target is None:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        getattr(args, target).extend(extra)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
