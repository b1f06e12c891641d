"""``depictqa infer``: answer official inference meta JSONs with a checkpoint, resumably (the model
loads once; each meta gets its own output file)."""

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

HELP = "Run a checkpoint over official inference meta JSONs (answers, preferences or scores)."
EXAMPLES = """  depictqa infer --ckpt CKPT --meta test/quality_compare.json --task quality_compare --out answers.json
  depictqa infer --ckpt CKPT --meta meta.json --images /data/kadid --task quality_single_A_noref \\
      --style detail --batch-size 16 --out detail.json
  depictqa infer --ckpt CKPT --meta pairs.json --task quality_compare --mode prefer --out prefer.json
  depictqa infer --ckpt CKPT --meta pairs.json --task quality_compare --mode prefer --both-orders --out p2.json
  depictqa infer --ckpt CKPT --meta kadid.json csiq.json tid.json --task quality_single_A_noref --out answers/
      (several metas: --out is a folder, each meta's answers go to answers/<meta name>)
  (an interrupted run resumes from answers.json.jsonl when started again with the same options)
"""
TASKS = tuple(OFFICIAL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meta", required=True, nargs="+", metavar="FILE.json",
                        help="official inference meta(s) (each a list of entries); the model loads once")
    parser.add_argument("--task", required=True, choices=TASKS, help="the official task of every entry")
    parser.add_argument("--out", required=True, nargs="+", metavar="OUT",
                        help="output JSON list of {id, text, confidence}: one file per meta, or with several "
                             "metas one folder (created) that receives a file named after each meta")
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
    add_generation_arguments(parser, default_tokens=400)  # the official inference default


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
    outs = outputs(args.meta, args.out)
    if isinstance(outs, str):
        return outs
    for out in outs:
        if out.is_dir():
            return f"--out {out} is a folder; name the JSON file to write"
        if not out.parent.is_dir() and not (len(args.meta) > 1 and len(args.out) == 1):
            return f"--out {out}: the folder {out.parent} does not exist"
    return check_generation_arguments(args) or check_checkpoint(args.ckpt) or check_device(args.device)


def outputs(metas: list[str], outs: list[str]) -> list[Path] | str:
    """The output file of each meta, or what is wrong with ``--out``."""
    if len(outs) == len(metas):
        if len(metas) > 1 and len({Path(o).resolve() for o in outs}) < len(outs):
            return "--out names the same file twice"
        return [Path(o) for o in outs]
    if len(outs) == 1 and len(metas) > 1:
        names = [Path(m).name for m in metas]
        if len(set(names)) < len(names):
            return f"--meta files share a name ({', '.join(names)}): give one --out file per meta"
        folder = Path(outs[0])
        if folder.exists() and not folder.is_dir():
            return f"--out {folder} is a file; with several metas give a folder or one file per meta"
        return [folder / name for name in names]
    return f"--out: give one file per meta ({len(metas)}) or, with several metas, one folder; got {len(outs)}"


def run(args: argparse.Namespace) -> int:
    from depictqa.checkpoint import CheckpointError
    from depictqa.infer.meta import MetaError, read_meta

    problem = _problem(args)
    if problem:
        return fail(problem)
    outs = outputs(args.meta, args.out)
    try:  # every meta is read before the model loads: a typo in the third fails in a second
        metas = [(meta, read_meta(meta, args.task), out) for meta, out in zip(args.meta, outs)]
    except MetaError as err:
        return fail(str(err))
    try:
        assessor = load_assessor(args, batch_size=args.batch_size)
    except CheckpointError as err:
        return fail(str(err))
    for meta, entries, out in metas:
        out.parent.mkdir(parents=True, exist_ok=True)
        code = _answer_meta(args, assessor, meta, entries, out)
        if code:
            return code
    return 0


def _answer_meta(args: argparse.Namespace, assessor: object, meta: str, entries: list, out: Path) -> int:
    from depictqa.checkpoint import fingerprint
    from depictqa.infer.meta import MetaError, PartialResults

    # the weights' fingerprint too: `last` or a reused folder may hold another model by now
    settings = {"ckpt": str(Path(args.ckpt).resolve()), "weights": fingerprint(args.ckpt),
                "meta": str(Path(meta).resolve()), "task": args.task,
                "mode": args.mode, "style": args.style, "max_new_tokens": args.max_new_tokens,
                "temperature": args.temperature, "top_p": args.top_p}
    if args.both_orders:  # only when set: a partial file written before the option existed still resumes
        settings["both_orders"] = True
    try:
        partial = PartialResults(out.with_name(out.name + ".jsonl"), settings)
    except MetaError as err:
        return fail(str(err))
    pending = [e for e in entries if str(e["id"]) not in partial.records]
    root = Path(args.images) if args.images else Path(meta).resolve().parent
    images, seconds = answer_entries(assessor, pending, args.task, root, partial, mode=args.mode, style=args.style,
                                     both_orders=args.both_orders, batch_size=args.batch_size,
                                     generation=generation_kwargs(args), done=len(entries) - len(pending))
    final = partial.finish(out, [str(e["id"]) for e in entries])
    errors = sum(1 for r in final if r.get("error"))
    rate = images / seconds if seconds > 0 else 0.0
    print(f"wrote {len(final)} records to {out} ({errors} with errors); {images} images in {seconds:.1f} s "
          f"= {rate:.2f} images/s", file=sys.stderr)
    return 0
