"""The assembled app, in process: groups, commands, help without a command, and exit statuses."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from stream_app.cli import main as cli_main
from stream_app.cli.main import build_app, main
from stream_app.data.formats import FORMATS

COMMANDS = {
    "kafka": {"up", "down", "status"},
    "model": {"list", "promote", "rollback"},
    "worker": None, "produce": None, "consume": None, "train": None, "eval": None,
    "bench": None, "reliability": None, "demo": None,
}


pytestmark = pytest.mark.usefixtures("own_settings")


def test_every_command_of_the_contract_is_registered():
    group = typer.main.get_command(build_app())
    ctx = typer.Context(group)
    assert set(group.list_commands(ctx)) == set(COMMANDS)
    for name, subs in COMMANDS.items():
        cmd = group.get_command(ctx, name)
        if subs is not None:
            assert set(cmd.list_commands(typer.Context(cmd))) == subs


@pytest.mark.parametrize("argv", [[], ["kafka"], ["model"]])
def test_a_group_without_a_command_prints_its_help(argv, capsys):
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(f"Usage: streamrec {' '.join(argv)}".rstrip() + " [OPTIONS]")


def test_usage_errors_exit_2_with_one_line(capsys):
    assert main(["produce", "--synthetic", "--format", "csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("streamrec: error: ") and len(err.splitlines()) == 1
    assert all(fmt in err for fmt in FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("argv", [["produce", "missing.file"], ["train", "--input", "missing.file"],
                                  ["eval", "--dataset", "missing.file", "--out", "x.json"]])
def test_produce_train_and_eval_accept_every_format(argv, fmt, capsys):
    assert main([*argv, "--format", fmt]) == 1  # past the format check, stopped by the missing file
    assert capsys.readouterr().err.strip() == "streamrec: error: no such file: missing.file"


def test_an_exit_status_from_a_command_is_kept(capsys):
    assert main(["kafka", "status"]) == 3  # nothing answers on port 9
    assert "not running" in capsys.readouterr().out


def test_an_unclassified_error_is_raised(monkeypatch):
    def boom() -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(cli_main.stream, "consume", boom)
    with pytest.raises(KeyError):
        main(["consume"])


def test_building_the_app_imports_no_heavy_library():
    code = ("import sys; from stream_app.cli.main import build_app; build_app(); "
            "print(sorted(m for m in ('torch', 'faust', 'kafka', 'aiokafka', 'numpy', 'models') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
