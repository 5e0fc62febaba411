"""The composition root: workers built from settings, several in one process, sharing nothing."""

from __future__ import annotations

import importlib
import subprocess
import sys

import orjson

from stream_app.core.sharing import decode
from stream_app.settings import Settings
from stream_app.worker.build import build_worker
from tests.paths import ROOT
from tests.unit.stream_app.worker.test_agents import Recorder, drain


def event(i: int, user: str, item: str) -> bytes:
    return orjson.dumps({"event_id": f"e-{i}", "user_id": user, "item_id": item, "type": "click", "ts": 10.0 + i})


async def test_two_workers_in_one_process_share_nothing(tmp_path):
    out_a, out_b = Recorder(), Recorder()
    a = build_worker(Settings(data_dir=tmp_path / "a", app_id="shop-a", top_k=3, events_topic="ev-a",
                              recommendations_topic="recs-a"), outbox=out_a)
    b = build_worker(Settings(data_dir=tmp_path / "b", app_id="shop-b", top_k=7, events_topic="ev-b",
                              recommendations_topic="recs-b"), outbox=out_b)
    parts = ("app", "metrics", "user_state", "pipeline", "store", "scorer", "watcher", "ingest", "checkpoints",
             "dashboard")
    for name in parts:
        assert getattr(a, name) is not getattr(b, name), name
    assert a.metrics.registry is not b.metrics.registry
    assert a.scorer.latencies is not b.scorer.latencies
    assert (a.pipeline.top_k, b.pipeline.top_k) == (3, 7)
    assert a.topics.events_name == "ev-a" and b.topics.events_name == "ev-b"
    assert a.checkpoints.path != b.checkpoints.path

    async with a.ingest_agent.test_context() as agent:
        for i in range(3):
            await agent.put(value=event(i, "u-1", f"i-{i}"), key=b"u-1")
        recs = await drain(a, out_a)
        assert a.user_state.get(b"u-1") is not None
    assert [r["event_id"] for r in recs] == ["e-0", "e-1", "e-2"]
    assert all(r[0] == "recs-a" for r in out_a.on("recs-a")) and not out_b.records
    # what one worker counted and learned, the other did not
    assert a.metrics.value("streamrec_events_total", outcome="valid") == 3
    assert b.metrics.value("streamrec_events_total", outcome="valid") == 0
    assert a.scorer.sent == 3 and b.scorer.sent == 0
    # worker a published the items' side of its events for the group; read back, they count once
    shared = out_a.on(a.settings.shared_topic)
    assert shared and not out_b.on(b.settings.shared_topic)
    assert sum(a.pipeline.apply_shared(decode(value)) for _, _, value, _ in shared) == 0
    assert a.pipeline.ranker.popularity.n_events == 3
    assert a.pipeline.ranker.popularity.leaderboard() and not b.pipeline.ranker.popularity.leaderboard()


def test_building_reads_no_files(tmp_path):
    """Nothing is read or created while building: the checkpoint is restored only by restore()."""
    data = tmp_path / "data"
    w = build_worker(Settings(data_dir=data, app_id="no-io"))
    assert not data.exists()
    assert w.restore() is False  # no checkpoint yet: a fresh start


def test_importing_the_package_builds_nothing():
    """Importing every stream_app module creates no app, reads no settings and opens nothing."""
    code = (
        "import pkgutil, importlib, stream_app, faust\n"
        "created = []\n"
        "orig = faust.App.__init__\n"
        "def spy(self, *a, **k):\n"
        "    created.append(a)\n"
        "    orig(self, *a, **k)\n"
        "faust.App.__init__ = spy\n"
        "for m in pkgutil.walk_packages(stream_app.__path__, 'stream_app.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(len(created))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "STREAMREC_WEB_PORT": "not-a-port"}  # bad settings: reading them would fail
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0"


def test_worker_package_modules_import_cleanly():
    for name in ("stream_app.worker.build", "stream_app.worker.agents", "stream_app.web.dashboard"):
        importlib.import_module(name)
