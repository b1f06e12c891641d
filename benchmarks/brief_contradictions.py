"""How often a checkpoint's brief comparison answers name one image twice.

A brief comparison answer reads "Image B is better than Image A, because Image A is ...". A model
that writes the preferred letter after every "Image" answers "Image B is better than Image B":
the demo's tiny model did so on ~95% of pairs with ``optim.loss_reduction: sample``
(docs/performance.md). For the first ``--n`` pairs of each held-out brief comparison file of a
``depictqa synth`` test folder (NR and FR), this counts the answers whose two named images are
the same, and those whose first-named (better) image is the right one.

Run: ``python benchmarks/brief_contradictions.py CKPT demo_out/data/test`` (CPU, ~30 s for the
tiny model).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

HEAD = re.compile(r"Image ([AB]) .*? than Image ([AB])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", help="checkpoint folder")
    parser.add_argument("test", type=Path, help="held-out folder written by depictqa synth (its test/ split)")
    parser.add_argument("--n", type=int, default=120, help="pairs per file (default: 120)")
    args = parser.parse_args()

    from depictqa.tasks import OFFICIAL
    from depictqa.infer.assessor import Assessor
    from depictqa.infer.batching import Request

    assessor = Assessor.from_pretrained(args.ckpt, batch_size=32)
    for stem in ("quality_compare_noref_brief", "quality_compare_brief"):
        records = json.loads((args.test / f"{stem}.json").read_text())[:args.n]
        requests = []
        for r in records:
            task, reference = OFFICIAL[r["task"]]
            images = {k: str(args.test / r[f]) for k, f in (("ref", "image_ref"), ("a", "image_A"),
                                                            ("b", "image_B")) if r.get(f)}
            requests.append(Request(task, reference, r["query"], images, key=str(r["id"])))
        answers = assessor.answer(requests, style="brief", max_new_tokens=48)
        parsed = twice = right = 0
        for r, a in zip(records, answers):
            m = HEAD.match(a.text)
            if m:
                parsed += 1
                twice += m.group(1) == m.group(2)
                right += (m.group(1) == "A") == r["A_better_B"]
        print(f"{stem}: {len(records)} pairs, {parsed} parsed, {twice} name one image twice, "
              f"{right} name the better image first")


if __name__ == "__main__":
    main()
