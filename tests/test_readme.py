"""The README is the front door: its first lines are the two commands, and its Python block runs
as written (on a tiny checkpoint put where the block looks)."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from tests.conftest import ROOT, TEXTS, tiny_recipe

README = (ROOT / "README.md").read_text()


def test_the_first_lines_are_the_two_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert [line.split()[:2] for line in block] == [["make", "demo"], ["make", "test"]]
    assert README.index("make demo") < 200


def test_the_python_block_runs(tmp_path, monkeypatch, capsys):
    import torch

    from depictqa.build import build_model
    from depictqa.checkpoint import save_pretrained

    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    monkeypatch.chdir(tmp_path)
    recipe = tiny_recipe()
    torch.manual_seed(0)
    save_pretrained(build_model(recipe, texts=TEXTS), recipe, tmp_path / "demo_out/run/checkpoints/last")
    rng = np.random.default_rng(0)
    for name in ("a", "b", "ref"):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and 1.0 <= float(lines[-1]) <= 5.0


def test_docs_cite_only_files_in_the_repository():
    cited = set()
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        cited |= {m for m in re.findall(r"\b((?:docs|depictqa|tests|benchmarks|recipes)/[\w./-]+\.(?:md|py|yaml|json|sh))",
                                        doc.read_text())}
    missing = sorted(c for c in cited if not (ROOT / c).exists() and "*" not in c)
    assert not missing, missing
