"""``streamrec kafka``: bad cluster sizes and replication settings get one line before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream_app", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@pytest.mark.parametrize(
    "args,env,status,needle",
    [
        (["kafka", "up", "--brokers", "2"], {}, 2, "is not 1 or 3"),
        (["kafka", "up", "--brokers", "0"], {}, 2, "is not 1 or 3"),
        (["kafka", "up", "--brokers", "two"], {}, 2, "--brokers"),
        (["kafka", "up"], {"STREAMREC_TOPIC_REPLICATION_FACTOR": "3"}, 1, "needs 3 brokers but 1 is up"),
        (["kafka", "up", "--brokers", "3"], {"STREAMREC_MIN_INSYNC_REPLICAS": "4"}, 1, "min.insync.replicas 4"),
        (["kafka", "status"], {"STREAMREC_MIN_INSYNC_REPLICAS": "most"}, 2,
         "bad setting STREAMREC_MIN_INSYNC_REPLICAS"),
    ],
)
def test_bad_arguments_give_one_line(args, env, status, needle, tmp_path):
    r = run(*args, env={"STREAMREC_KAFKA_DATA_DIR": str(tmp_path / "kafka"), "STREAMREC_BROKER": "kafka://127.0.0.1:9",
                        **env})
    err = r.stderr.strip()
    assert r.returncode == status, (r.returncode, err)
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, err
    assert err.startswith("streamrec: error:") and needle in err, err
    assert not (tmp_path / "kafka" / "node-1").exists(), "nothing may be started or written for a bad request"
