"""Layering that the imports must keep (read with ``ast``, so function-local imports count)."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "depictqa"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return out


def modules(*parts: str) -> list[Path]:
    root = PKG.joinpath(*parts)
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    assert files, f"no modules under {root}"
    return files


def reaches(path: Path, forbidden: str) -> list[str]:
    return sorted(m for m in imports(path) if m == forbidden or m.startswith(forbidden + "."))


RULES = [
    ("model.py", ["depictqa.objectives", "depictqa.conditioners", "depictqa.encoders.tiny", "depictqa.synth",
                  "depictqa.data", "lightning"]),
    ("build.py", ["depictqa.synth"]),
    ("prompts.py", ["depictqa.data"]),
    ("tasks.py", ["depictqa.data", "depictqa.prompts", "torch"]),
    ("conditioners", ["depictqa.encoders", "depictqa.synth", "depictqa.data"]),
    ("objectives", ["depictqa.synth", "depictqa.data"]),
    *[(package, ["depictqa.commands"]) for package in ("infer", "eval", "data", "synth", "encoders", "projectors",
                                                       "llms", "objectives", "conditioners")],
]


@pytest.mark.parametrize("where,forbidden", RULES, ids=[f"{w}" for w, _ in RULES])
def test_a_module_does_not_import_what_its_layer_may_not(where, forbidden):
    bad = {str(p.relative_to(PKG)): found for p in modules(where) for f in forbidden if (found := reaches(p, f))}
    assert not bad, f"forbidden imports: {bad}"


def test_only_commands_and_the_cli_import_commands():
    files = [p for p in PKG.rglob("*.py") if p.parts[-2] != "commands" and p.name != "cli.py"]
    assert len(files) > 40
    bad = [str(p.relative_to(PKG)) for p in files if reaches(p, "depictqa.commands")]
    assert not bad


def test_the_checker_sees_function_local_and_relative_imports(tmp_path):
    sample = PKG / "infer" / "_layering_probe.py"
    sample.write_text("def f():\n    from depictqa.commands.common import fail\n    from ..objectives import base\n")
    try:
        found = imports(sample)
    finally:
        sample.unlink()
    assert "depictqa.commands.common" in found and "depictqa.objectives.base" in found
