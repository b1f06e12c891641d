"""``depictqa infer``: answer an official inference meta JSON with a checkpoint, resumably."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depictqa.commands.common import fail
from depictqa.commands.inference_args import (add_generation_arguments, add_model_arguments, check_checkpoint,
                                              check_device, check_generation_arguments, generation_kwargs,
                                              load_assessor)
from depictqa.infer.run_meta import MODES, answer_entries  # light: stdlib only at import
from depictqa.tasks import OFFICIAL, spec

HELP = "Run a checkpoint over an official inference meta JSON (answers, preferences or scores)."
EXAMPLES = """  depictqa infer --ckpt CKPT --meta test/quality_compare.json --task quality_compare --out answers.json
  depictqa infer --ckpt CKPT --meta meta.json --images /data/kadid --task quality_single_A_noref \\
      --style detail --batch-size 16 --out detail.json
  depictqa infer --ckpt CKPT --meta pairs.json --task quality_compare --mode prefer --out prefer.json
  depictqa infer --ckpt CKPT --meta pairs.json --task quality_compare --mode prefer --both-orders --out p2.json
  (an interrupted run resumes from answers.json.jsonl when started again with the same options)
"""
TASKS = tuple(OFFICIAL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meta", required=True, metavar="FILE.json", help="official inference meta (list of entries)")
    parser.add_argument("--task", required=True, choices=TASKS, help="the official task of every entry")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON list of {id, text, confidence}")
    parser.add_argument("--images", default=None, metavar="ROOT",
                        help="folder image paths are relative to (default: the meta file's folder)")
    parser.add_argument("--mode", choices=MODES, default="text",
                        help="text: generate answers; prefer: P(A better) from one forward pass (compare "
                             "tasks); score: 1-5 quality from one forward pass (single tasks)")
    parser.add_argument("--both-orders", action="store_true",
                        help="with --mode prefer: also ask with A and B swapped and answer by P(A better) "
                             "averaged over the two orders (twice the forward passes)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="requests per batch (default: 8)")
    add_model_arguments(parser)
    add_generation_arguments(parser)


def _problem(args: argparse.Namespace) -> str | None:
    if args.batch_size < 1:
        return f"--batch-size must be >= 1, got {args.batch_size}"
    if args.mode == "prefer" and spec(args.task).kind != "compare":
        return f"--mode prefer needs a compare task, got --task {args.task}"
    if args.both_orders and args.mode != "prefer":
        return f"--both-orders needs --mode prefer, got --mode {args.mode}"
    if args.mode == "score" and spec(args.task).kind != "assess":
        return f"--mode score needs a quality_single_* task, got --task {args.task}"
    if args.images is not None and not Path(args.images).is_dir():
        return f"--images {args.images} is not a directory"
    out = Path(args.out)
    if out.is_dir():
        return f"--out {out} is a folder; name the JSON file to write"
    if not out.parent.is_dir():
        return f"--out {out}: the folder {out.parent} does not exist"
    return check_generation_arguments(args) or check_checkpoint(args.ckpt) or check_device(args.device)


def run(args: argparse.Namespace) -> int:
    from depictqa.checkpoint import CheckpointError, fingerprint
    from depictqa.infer.meta import MetaError, PartialResults, read_meta

    problem = _problem(args)
    if problem:
        return fail(problem)
    try:
        entries = read_meta(args.meta, args.task)
    except MetaError as err:
        return fail(str(err))
    out = Path(args.out)
    # the weights' fingerprint too: `last` or a reused folder may hold another model by now
    settings = {"ckpt": str(Path(args.ckpt).resolve()), "weights": fingerprint(args.ckpt),
                "meta": str(Path(args.meta).resolve()), "task": args.task,
                "mode": args.mode, "style": args.style, "max_new_tokens": args.max_new_tokens,
                "temperature": args.temperature, "top_p": args.top_p}
    if args.both_orders:  # only when set: a partial file written before the option existed still resumes
        settings["both_orders"] = True
    try:
        partial = PartialResults(out.with_name(out.name + ".jsonl"), settings)
    except MetaError as err:
        return fail(str(err))
    pending = [e for e in entries if str(e["id"]) not in partial.records]
    try:
        assessor = load_assessor(args, batch_size=args.batch_size)
    except CheckpointError as err:
        partial.close()
        return fail(str(err))
    root = Path(args.images) if args.images else Path(args.meta).resolve().parent
    images, seconds = answer_entries(assessor, pending, args.task, root, partial, mode=args.mode, style=args.style,
                                     both_orders=args.both_orders, batch_size=args.batch_size,
                                     generation=generation_kwargs(args), done=len(entries) - len(pending))
    final = partial.finish(out, [str(e["id"]) for e in entries])
    errors = sum(1 for r in final if r.get("error"))
    rate = images / seconds if seconds > 0 else 0.0
    print(f"wrote {len(final)} records to {out} ({errors} with errors); {images} images in {seconds:.1f} s "
          f"= {rate:.2f} images/s", file=sys.stderr)
    return 0
