"""``streamrec demo`` run again on the same broker: each run answers its own events, none of a backlog."""

from __future__ import annotations

import re
import subprocess
import sys

import orjson
import pytest

from stream_app.ops.testbed import event, free_port, read_records, send_events
from tests.integration.conftest import BROKER_DATA

pytestmark = pytest.mark.integration

EVENTS = 300


def run_demo(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "stream_app", "demo", "--exit", "-n", str(EVENTS), "--rate", "150"],
                          env=env, capture_output=True, timeout=240)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()[-3000:]
    return out


def test_a_demo_run_after_earlier_ones_answers_only_its_own_events(pipeline):
    env = pipeline.env("demo", STREAMREC_WEB_PORT=str(free_port()),
                       STREAMREC_KAFKA_DATA_DIR=str(BROKER_DATA[pipeline.bootstrap]))
    # what an earlier run (or anything else) left in the events topic: a backlog of other users
    backlog = [event(i, f"old-{i % 200}", f"i-{i % 500}") for i in range(4000)]
    send_events(pipeline.bootstrap, pipeline.events, backlog)
    first = run_demo(env)
    trained = re.search(r"training the deep model on this run's (\d+) events", first)
    assert trained and 0 < int(trained.group(1)) <= EVENTS, first  # not the 4,000 before it
    recs = [orjson.loads(r.value) for r in read_records(pipeline.bootstrap, pipeline.recommendations,
                                                        expect=EVENTS, timeout=30)]
    assert recs and not [r for r in recs if r["user_id"].startswith("old-")]  # no backlog answered
    assert len(recs) <= EVENTS
    # a second run: its own group and state (nothing of the first run to restore), its own events only
    second = run_demo(env)
    # the first run's group topics are deleted; its folder is kept (the newest two are)
    assert re.search(r"removed 0 earlier run folder\(s\) and [1-9]\d* of their topics", second), second
    again = read_records(pipeline.bootstrap, pipeline.recommendations, expect=2 * EVENTS, timeout=30)
    assert len(recs) < len(again) <= 2 * EVENTS
    folders = sorted(p.name for p in (pipeline.root / "demo" / "demo-runs").iterdir())
    assert len(folders) == 2 and all(f.startswith("demo-") for f in folders)
