"""``depictqa convert``: official DepictQA meta JSON + image folders -> WebDataset shards."""

from __future__ import annotations

import argparse
import sys

HELP = "Convert official DepictQA train meta JSON (and its images) into WebDataset shards."
EXAMPLES = """\
  depictqa convert --meta DQ-495K/meta_info/train_refA_brief.json --images DQ-495K/ --out shards/brief
  depictqa convert --meta a.json b.json --images data/ --out shards/mix --samples-per-shard 2000 --strict
  depictqa convert --meta a.json --images data/ --out shards/brief --overwrite   # replace earlier shards
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meta", nargs="+", required=True, metavar="FILE.json",
                        help="official train meta JSON file(s): a list of records")
    parser.add_argument("--images", required=True, metavar="ROOT",
                        help="folder the records' image paths are relative to")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for the shards")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first missing image or unknown task type (exit 2)")
    parser.add_argument("--samples-per-shard", type=int, default=1000, metavar="N")
    parser.add_argument("--prefix", default="train", metavar="NAME", help="shard name prefix (NAME-000000.tar)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the NAME-NNNNNN.tar shards already in --out first (nothing else)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from depictqa.data.convert import ConvertError, convert_meta

    if args.samples_per_shard < 1:
        print("--samples-per-shard must be >= 1", file=sys.stderr)
        return 2
    try:
        summary = convert_meta(args.meta, args.images, args.out, strict=args.strict,
                               samples_per_shard=args.samples_per_shard, prefix=args.prefix,
                               progress=not args.quiet, overwrite=args.overwrite)
    except ConvertError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(summary["skipped"].items())) or "none"
    print(f"wrote {summary['written']} samples to {len(summary['shards'])} shard(s) in {args.out}; "
          f"skipped: {skipped}")
    return 0
