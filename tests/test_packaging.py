"""The package as users install it: a wheel that carries the recipes and the license, works outside
the checkout, declares every third-party import, and answers `depictqa --version`."""

import ast
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the sources (the build leaves nothing in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "depictqa", src / "depictqa", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(src)], check=True, timeout=300)
    (path,) = out.glob("depictqa-*.whl")
    return path


def test_wheel_contains_every_recipe_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = {p.relative_to(ROOT).as_posix() for p in (ROOT / "depictqa" / "recipes").rglob("*.yaml")}
    assert len(recipes) >= 10 and "depictqa/recipes/ablations/mlp_projector.yaml" in recipes
    assert recipes <= names, sorted(recipes - names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert f"License-Expression: {PYPROJECT['license']}" in metadata
    assert "Apache License" in (ROOT / "LICENSE").read_text() and PYPROJECT["license"] == "Apache-2.0"


def test_installed_wheel_finds_its_recipes_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, timeout=300)
    code = ("import depictqa, depictqa.demo\n"
            "from importlib.resources import files\n"
            "from depictqa.config import load_recipe\n"
            "recipe = files('depictqa') / 'recipes' / 'tiny.yaml'\n"
            "print(depictqa.__file__)\n"
            "print(load_recipe(str(recipe), check_local=False).model.encoder.name)\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env={"PYTHONPATH": str(site), "PATH": ""},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    where, encoder = proc.stdout.split()[-2:]
    assert where.startswith(str(site)) and encoder == "tiny-vit"


def test_every_third_party_import_is_a_declared_dependency():
    declared = {_name(r) for r in PYPROJECT["dependencies"]}
    declared |= {_name(r) for extra in PYPROJECT["optional-dependencies"].values() for r in extra}
    distributions = md.packages_distributions()
    modules = set()
    for path in (ROOT / "depictqa").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = sorted(m for m in modules if m not in sys.stdlib_module_names and m != "depictqa")
    assert len(third_party) > 10
    undeclared = {m: distributions.get(m) for m in third_party
                  if not {_name(d) for d in distributions.get(m, [m])} & declared}
    assert not undeclared, undeclared


def test_lower_bounds_cover_the_apis_the_code_calls():
    # torch 2.10's varlen_attn has neither scale= nor window_size= (the packed CUDA path passes both);
    # transformers gained masking_utils in 4.53 and from_pretrained(dtype=) in 4.56.
    bounds = {_name(r): r for r in PYPROJECT["dependencies"]}
    assert bounds["torch"] == "torch>=2.11" and bounds["transformers"] == "transformers>=4.56"
    assert {"braceexpand", "threadpoolctl", "huggingface-hub"} <= set(bounds)


def test_version_flag(capsys):
    from depictqa.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"depictqa {md.version('depictqa')}"
