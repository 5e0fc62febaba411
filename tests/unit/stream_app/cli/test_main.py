"""The streamrec command: wrong arguments get one line and a non-zero status, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stream_app.cli.models import parse_duration

# ``python -m stream_app`` with kafka-python's clients giving up on an unreachable broker after 2 s
# instead of their default 30 s: the same error, raised where it is raised in production, sooner.
QUICK_BOOTSTRAP = (
    "import sys\n"
    "from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer\n"
    "for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):\n"
    "    client.DEFAULT_CONFIG['bootstrap_timeout_ms'] = 2000\n"
    "from stream_app.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def run(*args: str, env: dict | None = None, quick_bootstrap: bool = False) -> subprocess.CompletedProcess:
    entry = ["-c", QUICK_BOOTSTRAP] if quick_bootstrap else ["-m", "stream_app"]
    return subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize(
    "args,needle",
    [
        (["produce", "--bogus"], "No such option"),
        (["produce", "--synthetic", "--format", "csv"], "unknown format"),
        (["produce"], "either FILE or --synthetic"),
        (["produce", "--synthetic", "--rate", "-5"], "--rate"),
        (["produce", "no-such-file.csv", "--format", "movielens"], "no such file"),
        (["consume", "--max", "many"], "--max"),
        (["train", "--every", "soon"], "not a duration"),
        (["train", "--device", "tpu"], "cpu or cuda"),
        (["eval", "--dataset", "nope.csv", "--format", "movielens", "--out", "x.json"], "nope.csv"),
        (["eval", "--synthetic", "1000", "--rules", "nope.json", "--out", "x.json"], "nope.json"),
        (["frobnicate"], "No such command"),
        (["worker"], "STREAMREC_EXPERIMENTS_FILE"),
        (["model", "promote", "../../etc"], "version"),
        (["bench", "--out", "x.json", "--scaleout", "1,two"], "--scaleout"),
        (["bench", "--out", "x.json", "--scaleout", "0,2"], "from 1 to 16"),
    ],
)
def test_bad_arguments_give_one_line(args, needle, tmp_path):
    r = run(*args, env={"STREAMREC_DATA_DIR": str(tmp_path), "STREAMREC_EXPERIMENTS_FILE": str(tmp_path / "no.json")}
            if args == ["worker"] else {"STREAMREC_DATA_DIR": str(tmp_path)})
    assert r.returncode != 0
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("streamrec: error:")
    assert needle.lower() in err.lower()


def test_bad_setting_gives_one_line():
    r = run("kafka", "status", env={"STREAMREC_WEB_PORT": "not-a-port"})
    assert r.returncode == 2
    assert r.stderr.strip().startswith("streamrec: error: bad setting STREAMREC_WEB_PORT")
    assert len(r.stderr.strip().splitlines()) == 1


def test_unreachable_broker_is_explained(tmp_path):
    r = run("produce", "--synthetic", "-n", "5", "--no-progress", quick_bootstrap=True,
            env={"STREAMREC_BROKER": "kafka://127.0.0.1:9", "STREAMREC_DATA_DIR": str(tmp_path)})
    assert r.returncode == 1
    assert "streamrec kafka up" in r.stderr and "Traceback" not in r.stderr


def test_help_lists_the_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("kafka", "worker", "produce", "consume", "train", "model", "eval", "demo"):
        assert cmd in r.stdout


def test_parse_duration():
    assert parse_duration("90s") == 90 and parse_duration("1.5h") == 5400
