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
  depictqa evaluate --gt test.json --baselines
  depictqa evaluate --check-leakage --train 'shards/train-{000000..000031}.tar' --gt test.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", help="predictions: official output JSON list or .jsonl")
    parser.add_argument("--gt", required=True, help="ground truth: official test JSON")
    parser.add_argument("--metric", nargs="+", default=[], choices=[*METRICS, "all"],
                        metavar="M", help=f"metrics to compute: {', '.join(METRICS)}, all")
    parser.add_argument("--out", help="folder for report.md, results.json and figures")
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


def run(args: argparse.Namespace) -> int:
    from depictqa.eval.records import EvalInputError, load_ground_truth, load_predictions, match
    from depictqa.eval.report import markdown, write_report

    metrics = list(METRICS) if "all" in args.metric else list(dict.fromkeys(args.metric))
    if metrics and not args.pred:
        return _fail("--metric needs --pred (the predictions to score)")
    if args.check_leakage and not args.train:
        return _fail("--check-leakage needs --train SHARDS")
    if not (metrics or args.baselines or args.check_leakage):
        return _fail("nothing to do: give --metric, --baselines or --check-leakage")
    try:
        gt = load_ground_truth(args.gt)
        preds = load_predictions(args.pred) if metrics else []
    except EvalInputError as err:
        return _fail(str(err))

    results: dict[str, Any] = {}
    if metrics:
        matched = match(preds, gt)
        results["matching"] = {"n_matched": len(matched.pairs), "n_missing": len(matched.missing),
                               "n_extra": len(matched.extra)}
        if matched.missing:
            print(f"warning: {len(matched.missing)} gt ids have no prediction "
                  f"(e.g. {', '.join(matched.missing[:5])})", file=sys.stderr)
        if matched.extra:
            print(f"warning: {len(matched.extra)} predicted ids are not in the gt "
                  f"(e.g. {', '.join(matched.extra[:5])})", file=sys.stderr)
        if not matched.pairs:
            return _fail(f"no prediction id in {args.pred} matches an id in {args.gt}")
        results.update(evaluate(matched.pairs, gt, metrics, not args.no_embeddings))
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
    if args.out:
        for path in write_report(results, args.out):
            print(f"wrote {path}")
    leak_count = results.get("leakage", {}).get("n_leaked_images", 0)
    return 1 if leak_count and not math.isnan(leak_count) else 0
