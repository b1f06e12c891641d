"""The command line: help with examples, listings, validate's parameter table, W&B offline logging."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "depictqa.cli", *args], capture_output=True, text=True,
                          timeout=300, **kw)


def test_every_command_has_help_with_an_example():
    from depictqa.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= {"fit", "validate", "list", "synth", "convert", "evaluate"}
    for name, p in sub.choices.items():
        assert "examples:" in (p.epilog or "") and f"depictqa {name}" in p.epilog, name
    assert set(sub.choices) <= set(COMMANDS)


def test_every_command_is_a_thin_adapter_under_depictqa_commands_with_help_examples(capsys):
    import importlib

    from depictqa import cli

    assert "bench" not in cli.COMMANDS
    for name, module_path in cli.COMMANDS.items():
        assert module_path.startswith("depictqa.commands."), (name, module_path)
        module = importlib.import_module(module_path)
        assert all(hasattr(module, a) for a in ("HELP", "EXAMPLES", "add_arguments", "run")), name
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0, name
        out = capsys.readouterr().out
        assert "examples:" in out and module.EXAMPLES.strip().splitlines()[0].strip() in out, name


def test_a_command_whose_module_is_missing_is_an_error_not_skipped(monkeypatch):
    from depictqa import cli

    monkeypatch.setattr(cli, "COMMANDS", {**cli.COMMANDS, "nosuch": "depictqa.commands.nosuch"})
    with pytest.raises(ImportError, match="nosuch") as err:
        cli.build_parser()
    assert "depictqa.commands.nosuch" in str(err.value)


def test_only_the_cli_imports_depictqa_commands():
    import ast

    offenders = []
    for path in (ROOT / "depictqa").rglob("*.py"):
        rel = path.relative_to(ROOT / "depictqa").as_posix()
        if rel.startswith("commands/") or rel == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            names += [f"{n}.{a.name}" for n in names if isinstance(node, ast.ImportFrom) for a in node.names]
            offenders += [f"{rel}: {n}" for n in names if n == "depictqa.commands" or n.startswith("depictqa.commands.")]
    assert not offenders, offenders


def test_list_prints_each_component_with_a_description():
    out = cli("list", "projectors").stdout
    lines = [line.split(None, 1) for line in out.splitlines()[1:]]
    assert [n for n, _ in lines] == ["abstractor", "linear", "mlp", "official-abstractor"]
    assert all(len(desc) > 10 for _, desc in lines)


def test_validate_prints_parameter_counts():
    proc = cli("validate", str(ROOT / "recipes/tiny.yaml"), "--no-local-checks")  # no demo shards here
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("part")[-1]
    rows = {line.split()[0]: line.split()[1:] for line in table.strip().splitlines()[1:]}
    assert set(rows) == {"encoder", "projector", "llm", "conditioners", "all"}
    count = lambda column: [int(v[column].replace(",", "")) for k, v in rows.items() if k != "all"]
    assert [sum(count(0)), sum(count(1))] == [int(v.replace(",", "")) for v in rows["all"]]
    assert "template: compact" in proc.stdout


def test_wandb_logger_works_offline_without_an_account(tmp_path):
    from depictqa.train import make_logger
    from tests.conftest import tiny_recipe

    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_CACHE_DIR": str(tmp_path / "cache"),
           "WANDB_CONFIG_DIR": str(tmp_path / "config"), "WANDB_DATA_DIR": str(tmp_path / "data"), "WANDB_SILENT": "true"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        (logger,) = make_logger(tiny_recipe(f"logger={{name: wandb, project: test, save_dir: '{tmp_path}'}}"))
        logger.log_metrics({"train/loss": 1.0}, step=1)
        logger.experiment.finish()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert list(tmp_path.rglob("offline-run-*")), "no offline run folder written"
