"""The command line: help with examples, listings, validate's parameter table, W&B offline logging."""

import os
import subprocess
import sys

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


def test_list_prints_each_component_with_a_description():
    out = cli("list", "projectors").stdout
    lines = [line.split(None, 1) for line in out.splitlines()[1:]]
    assert [n for n, _ in lines] == ["abstractor", "linear", "mlp"]
    assert all(len(desc) > 10 for _, desc in lines)


def test_validate_prints_parameter_counts():
    proc = cli("validate", str(ROOT / "recipes/tiny.yaml"))
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("part")[-1]
    rows = {line.split()[0]: line.split()[1:] for line in table.strip().splitlines()[1:]}
    assert set(rows) == {"encoder", "projector", "llm", "distortion_head", "relative_stats", "all"}
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
        logger = make_logger(tiny_recipe(f"logger={{name: wandb, project: test, save_dir: '{tmp_path}'}}"))
        logger.log_metrics({"train/loss": 1.0}, step=1)
        logger.experiment.finish()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert list(tmp_path.rglob("offline-run-*")), "no offline run folder written"
