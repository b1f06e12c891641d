"""``depictqa infer``: answer an official inference meta JSON with a checkpoint, resumably."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from depictqa.infer.cli_common import (add_generation_arguments, add_model_arguments, check_checkpoint,
                                       check_generation_arguments, generation_kwargs, load_assessor)

HELP = "Run a checkpoint over an official inference meta JSON (answers, preferences or scores)."
EXAMPLES = """  depictqa infer --ckpt CKPT --meta test/quality_compare.json --task quality_compare --out answers.json
  depictqa infer --ckpt CKPT --meta meta.json --images /data/kadid --task quality_single_A_noref \\
      --style detail --batch-size 16 --out detail.json
  depictqa infer --ckpt CKPT --meta pairs.json --task quality_compare --mode prefer --out prefer.json
  depictqa infer --ckpt CKPT --meta pairs.json --task quality_compare --mode prefer --both-orders --out p2.json
  (an interrupted run resumes from answers.json.jsonl when started again with the same options)
"""
TASKS = ("quality_compare", "quality_compare_noref", "quality_single_A", "quality_single_A_noref",
         "quality_single_B", "quality_single_B_noref", "description")
MODES = ("text", "prefer", "score")


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
    if args.mode == "prefer" and not args.task.startswith("quality_compare"):
        return f"--mode prefer needs a compare task, got --task {args.task}"
    if args.both_orders and args.mode != "prefer":
        return f"--both-orders needs --mode prefer, got --mode {args.mode}"
    if args.mode == "score" and not args.task.startswith("quality_single"):
        return f"--mode score needs a quality_single_* task, got --task {args.task}"
    if args.images is not None and not Path(args.images).is_dir():
        return f"--images {args.images} is not a directory"
    return check_generation_arguments(args) or check_checkpoint(args.ckpt)


def run(args: argparse.Namespace) -> int:
    from depictqa.commands.common import fail
    from depictqa.infer.meta import MetaError, PartialResults, read_meta

    problem = _problem(args)
    if problem:
        return fail(problem)
    try:
        entries = read_meta(args.meta, args.task)
    except MetaError as err:
        return fail(str(err))
    out = Path(args.out)
    settings = {"ckpt": str(Path(args.ckpt).resolve()), "meta": str(Path(args.meta).resolve()), "task": args.task,
                "mode": args.mode, "style": args.style, "max_new_tokens": args.max_new_tokens,
                "temperature": args.temperature, "top_p": args.top_p}
    if args.both_orders:  # only when set: a partial file written before the option existed still resumes
        settings["both_orders"] = True
    try:
        partial = PartialResults(out.with_name(out.name + ".jsonl"), settings)
    except MetaError as err:
        return fail(str(err))
    pending = [e for e in entries if str(e["id"]) not in partial.records]
    from depictqa.checkpoint import CheckpointError

    try:
        assessor = load_assessor(args, batch_size=args.batch_size)
    except CheckpointError as err:
        partial.close()
        return fail(str(err))
    root = Path(args.images) if args.images else Path(args.meta).resolve().parent
    images, seconds = _process(assessor, pending, args, root, partial, done=len(entries) - len(pending))
    final = partial.finish(out, [str(e["id"]) for e in entries])
    errors = sum(1 for r in final if r.get("error"))
    rate = images / seconds if seconds > 0 else 0.0
    print(f"wrote {len(final)} records to {out} ({errors} with errors); {images} images in {seconds:.1f} s "
          f"= {rate:.2f} images/s", file=sys.stderr)
    return 0


def _process(assessor: Any, pending: list[dict[str, Any]], args: argparse.Namespace, root: Path,
             partial: Any, done: int) -> tuple[int, float]:
    """Answer ``pending`` chunk by chunk, streaming records; returns (images read, seconds)."""
    from tqdm import tqdm

    from depictqa.infer.meta import image_count, to_request

    per_item = image_count(args.task)
    images, start = 0, time.perf_counter()
    with tqdm(total=done + len(pending), initial=done, unit="item", desc=f"infer {args.task}", file=sys.stderr) as bar:
        for lo in range(0, len(pending), args.batch_size):
            chunk = pending[lo:lo + args.batch_size]
            requests = [to_request(e, args.task, root, None) for e in chunk]
            records = _answer(assessor, requests, args)
            images += per_item * sum(1 for r in records if not r.get("error"))
            partial.add(records)
            bar.update(len(chunk))
    return images, time.perf_counter() - start


def _answer(assessor: Any, requests: list[Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    ids = [r.key for r in requests]
    if args.mode == "text":
        results = assessor.answer(requests, args.style, **generation_kwargs(args))
        return [_record(i, r.error, text=r.text, confidence=r.confidence, probabilities=r.probabilities)
                for i, r in zip(ids, results)]
    refs = [r.images.get("ref") for r in requests]
    if args.mode == "prefer":
        # The official query may ask for a paragraph; preference reads the single-answer question.
        results = assessor.prefer([r.images["a"] for r in requests], [r.images["b"] for r in requests], refs,
                                  both_orders=args.both_orders)
        if not args.both_orders:
            return [_record(i, p.error, text=p.text, confidence=p.confidence, probabilities=p.probabilities,
                            p_a=p.p_a) for i, p in zip(ids, results)]
        return [_record(i, p.error, **({} if p.error else p.both_orders_answer())) for i, p in zip(ids, results)]
    results = assessor.score([r.images["a"] for r in requests], refs)
    records = []
    for i, s in zip(ids, results):
        best = max(s.probabilities, key=s.probabilities.get) if s.probabilities else None
        records.append(_record(i, s.error, text=best, confidence=s.probabilities[best] if best else None,
                               score=s.score, probabilities=s.probabilities))
    return records


def _record(eid: str, error: str | None, **fields: Any) -> dict[str, Any]:
    """An output record; an error record keeps the official keys with null values."""
    if error:
        return {"id": eid, "text": None, "confidence": None, "error": error}
    rec = {"id": eid, "text": fields.pop("text"), "confidence": fields.pop("confidence")}
    rec.update({k: v for k, v in fields.items() if v is not None})
    return rec
