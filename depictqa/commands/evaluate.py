"""``depictqa evaluate``: score predictions against ground truth, run FR baselines, check leakage."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from depictqa.eval.evaluate import METRICS, evaluate  # light: metrics import their libraries when called

HELP = "Evaluate predictions (accuracy, calibration, SRCC/PLCC, text), FR baselines, leakage."
EXAMPLES = """\
  depictqa evaluate --pred answers.json --gt test.json --metric identification confidence
  depictqa evaluate --pred answers.jsonl --gt test.json --metric all --out reports/run1
  depictqa evaluate --pred answers.json --gt test_refAB.json --metric correlation --mos mos.json
  depictqa evaluate --gt test.json --baselines
  depictqa evaluate --check-leakage --train 'shards/train-{000000..000031}.tar' --gt test.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", help="predictions: official output JSON list or .jsonl")
    parser.add_argument("--gt", required=True, help="ground truth: official test JSON")
    parser.add_argument("--metric", nargs="+", default=[], choices=[*METRICS, "all"],
                        metavar="M", help=f"metrics to compute: {', '.join(METRICS)}, all")
    parser.add_argument("--mos", help="official MOS file {reference: {dist_paths, mos_list}} for "
                        "--metric correlation (default: mos / mos_A / mos_B fields of --gt)")
    parser.add_argument("--out", help="folder for report.md, results.json and figures")
    parser.add_argument("--wandb", action="store_true",
                        help="log the report's tables and figures to a W&B run (WANDB_MODE, "
                        "WANDB_PROJECT, WANDB_DIR are read from the environment)")
    parser.add_argument("--baselines", action="store_true",
                        help="rating accuracy of PSNR/SSIM/MS-SSIM/VIF/UQI on the FR compare pairs")
    parser.add_argument("--check-leakage", action="store_true",
                        help="report test images that also appear in the --train shards")
    parser.add_argument("--train", nargs="+", help="training shards (paths or brace patterns)")
    parser.add_argument("--no-embeddings", action="store_true",
                        help="skip the sentence-embedding similarity of detailed answers")


def _fail(message: str) -> int:
    print(f"depictqa evaluate: error: {message}", file=sys.stderr)
    return 2


def _match(preds: list[dict[str, Any]], gt: list[dict[str, Any]]) -> Any:
    """Pair predictions with the ground truth by id, warning on stderr about the unpaired."""
    from depictqa.eval.records import match

    matched = match(preds, gt)
    if matched.missing:
        print(f"warning: {len(matched.missing)} gt ids have no prediction "
              f"(e.g. {', '.join(matched.missing[:5])})", file=sys.stderr)
    if matched.extra:
        print(f"warning: {len(matched.extra)} predicted ids are not in the gt "
              f"(e.g. {', '.join(matched.extra[:5])})", file=sys.stderr)
    return matched


def run(args: argparse.Namespace) -> int:
    from depictqa.eval.records import EvalInputError, load_ground_truth, load_predictions
    from depictqa.eval.report import markdown, write_report
    from depictqa.eval.voting import load_mos

    metrics = list(METRICS) if "all" in args.metric else list(dict.fromkeys(args.metric))
    if metrics and not args.pred:
        return _fail("--metric needs --pred (the predictions to score)")
    if args.check_leakage and not args.train:
        return _fail("--check-leakage needs --train SHARDS")
    if not (metrics or args.baselines or args.check_leakage):
        return _fail("nothing to do: give --metric, --baselines or --check-leakage")
    if args.mos and "correlation" not in metrics:
        return _fail("--mos is read by --metric correlation; add it")
    try:
        gt = load_ground_truth(args.gt)
        preds = load_predictions(args.pred) if metrics else []
        mos = load_mos(args.mos) if args.mos else None
    except EvalInputError as err:
        return _fail(str(err))

    results: dict[str, Any] = {}
    if metrics:
        matched = _match(preds, gt)
        results["matching"] = {"n_matched": len(matched.pairs), "n_missing": len(matched.missing),
                               "n_extra": len(matched.extra)}
        if not matched.pairs:
            return _fail(f"no prediction id in {args.pred} matches an id in {args.gt}")
        results.update(evaluate(matched.pairs, gt, metrics, not args.no_embeddings, mos=mos))
    if args.baselines:
        from depictqa.eval.baselines import run_baselines

        try:
            results["baselines"] = run_baselines(gt)
        except (OSError, ValueError) as err:
            return _fail(f"baselines: cannot read an image ({err})")
    if args.check_leakage:
        from depictqa.eval.leakage import check_leakage, format_leakage

        try:
            leak = check_leakage(gt, args.train)
        except (OSError, ValueError) as err:
            return _fail(f"cannot read training shards {args.train}: {err}")
        results["leakage"] = {k: v for k, v in leak.items() if not isinstance(v, list)}
        for line in format_leakage(leak):
            print(line)
    if any(k != "leakage" for k in results):
        print(markdown(results))
    written = write_report(results, args.out) if args.out else []
    for path in written:
        print(f"wrote {path}")
    if args.wandb and results:
        error = _log_wandb(results, written, args)
        if error:
            return _fail(error)
    leak_count = results.get("leakage", {}).get("n_leaked_images", 0)
    return 1 if leak_count and not math.isnan(leak_count) else 0


def _log_wandb(results: dict[str, Any], written: list[Any], args: argparse.Namespace) -> str | None:
    """Log the report to a new W&B run; returns an error message or ``None``."""
    import os
    import tempfile

    from depictqa.eval.report import log_to_wandb, write_report

    try:
        import wandb
    except ImportError:
        return "--wandb needs the wandb package (pip install wandb)"
    with tempfile.TemporaryDirectory() as tmp:
        figures = [p for p in (written or write_report(results, tmp)) if str(p).endswith(".png")]
        run = wandb.init(project=os.environ.get("WANDB_PROJECT", "depictqa"), job_type="evaluate",
                         config={"pred": args.pred, "gt": args.gt, "mos": args.mos, "metrics": args.metric})
        log_to_wandb(results, run, figures=figures)
        print(f"logged to W&B run {run.name} ({run.dir})")
        run.finish()
    return None

