"""The operator dashboard on a real worker: its JSON, its access rules, and the page in a real browser.

The browser test drives Debian's headless Chromium (``make browser`` installs it) and saves a
screenshot to ``test-artifacts/dashboard.png``; it is skipped when Chromium is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import orjson
import pytest

from stream_app.data.synthetic import generate
from stream_app.ops.testbed import ROOT, producer, send_events
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration

TOKEN = "dash-secret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ARTIFACTS = ROOT / "test-artifacts"
INVALID = [
    (b"u-bad", b"{not json"),
    (b"u-bad", orjson.dumps({"event_id": "x1", "user_id": "u-bad", "item_id": "i", "type": "like", "ts": 1})),
    (b"u-bad", orjson.dumps({"event_id": "x2", "user_id": "u-bad", "item_id": "i", "type": "click"})),
    (b"someone-else", orjson.dumps({"event_id": "x3", "user_id": "u-bad", "item_id": "i", "type": "click", "ts": 1})),
    (b"u-bad", b""),
]


def stats(w: Worker, scope: str = "local") -> dict:
    """The worker's ``/api/stats``. A worker that does not answer within the request's timeout
    (a stall on a loaded machine while the group rebalances) is asked again for up to 30 s; one
    that stays silent or has exited fails the test with its state and the end of its log."""
    deadline = time.monotonic() + 30
    while True:
        status, body = w.get(f"/api/stats?scope={scope}", AUTH, timeout=10)
        if status != 0 or not w.alive or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200, (f"/api/stats?scope={scope} answered {status} {body[:300]!r} "
                           f"(worker {'running' if w.alive else 'exited'})\n{w.log_tail()}")
    return orjson.loads(body)


def wait_for(predicate, timeout: float, what: str, w: Worker):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}\n{w.log_tail()}")


def wait_sampling(w: Worker) -> None:
    """Wait until the worker's one-second sampler runs (Faust starts timers once the worker is ready),
    so the traffic sent next shows up in its rates."""
    wait_for(lambda: len(stats(w)["series"]["t"]) >= 1, 90, "the dashboard's sampler to run", w)


def produce_in_bursts(pipeline, events: list[dict], bursts: int = 5, pause: float = 0.8) -> None:
    size = -(-len(events) // bursts)
    for i in range(0, len(events), size):
        send_events(pipeline.bootstrap, pipeline.events, events[i:i + size])
        time.sleep(pause)


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (run `make browser`, or apt-get install chromium as root)")
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", *args],
        capture_output=True, timeout=timeout, check=False,
    )


def attr(dom: str, element_id: str, name: str) -> str:
    tag = re.search(rf'<[^>]*\bid="{element_id}"[^>]*>', dom)
    assert tag, f"#{element_id} missing from the rendered page"
    m = re.search(rf'\b{name}="([^"]*)"', tag.group(0))
    assert m, f"#{element_id} has no {name}: {tag.group(0)}"
    return m.group(1)


def text_of(dom: str, element_id: str) -> str:
    m = re.search(rf'\bid="{element_id}"[^>]*>([^<]*)<', dom)
    assert m, f"#{element_id} missing from the rendered page"
    return m.group(1)


def test_dashboard_json_access_and_browser_rendering(pipeline, workers, tmp_path):
    w = Worker(pipeline, STREAMREC_AUTH_TOKEN=TOKEN)
    workers.append(w.start())
    wait_sampling(w)
    valid = list(generate(500, n_users=60, n_items=150, seed=11))
    p = producer(pipeline.bootstrap)
    for key, value in INVALID:
        p.send(pipeline.events, key=key, value=value)
    p.flush()
    p.close()
    produce_in_bursts(pipeline, valid)
    wait_for(lambda: stats(w, "summary")["scored"] >= len(valid), 90, "every event scored", w)
    time.sleep(2.5)  # let the one-second sampler record the last interval

    # access: the dashboard and its data need the token; metrics and health stay open
    assert w.get("/dashboard")[0] == 401
    assert w.get("/dashboard", {"Authorization": "Bearer wrong"})[0] == 401
    assert w.get("/dashboard?token=wrong")[0] == 401
    status, page = w.get("/dashboard", AUTH)
    assert status == 200 and b"/dashboard/dashboard.js" in page
    assert w.get(f"/dashboard?token={TOKEN}")[0] == 200
    assert w.get("/api/stats")[0] == 401
    # a header that is not UTF-8 (sent as the bytes ff fe) is refused like a wrong token, not a 500
    assert w.get("/api/stats", {"Authorization": "Bearer \xff\xfe"})[0] == 401
    assert w.get("/dashboard", {"Authorization": "\xff"})[0] == 401
    assert w.get("/api/stats?scope=nonsense", AUTH)[0] == 400
    assert w.get("/metrics")[0] == 200 and w.get("/health")[0] == 200 and w.get("/ready")[0] == 200
    status, script = w.get("/dashboard/dashboard.js")
    assert status == 200 and b"/api/stats" in script and b"http" not in script.replace(b"/api/stats", b"")

    # the JSON the page draws
    s = stats(w, "cluster")
    assert s["worker"]["partitions"] == [0, 1, 2, 3]
    series = s["series"]
    assert len(series["t"]) >= 3 and all(len(v) == len(series["t"]) for v in series.values())
    assert sum(series["events_s"]) > 0 and sum(series["recs_s"]) > 0
    assert any(v is not None and v > 0 for v in series["p99_ms"])
    assert any(v is not None and v > 0 for v in series["batch_ms"])
    assert any(v is not None and v > 0 for v in series["ingest_ms"])
    assert s["current"]["ingested"] == len(valid) + len(INVALID)
    assert s["current"]["scored"] == len(valid)
    assert sum(s["dlq"].values()) == len(INVALID) and "malformed_json" in s["dlq"]
    lat = s["latency_ms"]
    assert lat["count"] == len(valid) and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    assert set(s["lag"]) <= {"0", "1", "2", "3"}
    q = s["quality"]
    assert q["judged"] > 0 and 0.0 <= q["hr@10"] <= 1.0 and {"ctr", "conversion", "returning_rate"} <= set(q)
    assert q["returning_rate"] > 0
    assert s["models"]["version"]["online"] > 0 and isinstance(s["models"]["history"], list)
    assert len(s["trending"]) == 10 and s["trending"][0]["score"] >= s["trending"][-1]["score"] > 0
    assert [a["name"] for a in s["agents"]] == ["ingest", "scorer"]
    assert all(a["peak_s"] > 0 and a["ms"] > 0 and a["total"] >= len(valid) for a in s["agents"])
    cluster = s["cluster"]
    assert len(cluster["workers"]) == 1 and cluster["workers"][0]["self"] is True
    assert cluster["totals"]["scored"] == len(valid) and cluster["totals"]["partitions"] == 4

    # the page in a real browser
    url = f"{w.url}/dashboard?token={TOKEN}"
    common = ["--virtual-time-budget=5000"]
    dump = chromium(*common, "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chrome-dom'}", "--dump-dom", url)
    dom = dump.stdout.decode("utf-8", "replace")
    assert 'data-state="live"' in dom, (dump.stderr.decode()[-2000:], dom[:2000])
    for chart in ("chart-throughput", "chart-processing", "chart-latency", "chart-quality"):
        assert int(attr(dom, chart, "data-points")) > 0, chart
    assert int(attr(dom, "chart-dlq", "data-bars")) >= 3
    assert int(attr(dom, "chart-trending", "data-bars")) == 10
    assert int(attr(dom, "workers", "data-rows")) == 1
    assert dom.count('class="series"') >= 8  # drawn SVG lines
    assert text_of(dom, "kpi-dlq") == str(len(INVALID))
    assert text_of(dom, "worker-partitions") == "0, 1, 2, 3"
    assert text_of(dom, "total-scored") == str(len(valid))
    assert attr(dom, "view-scope", "data-scope") == "worker"
    assert TOKEN not in dom.split("<body", 1)[1]  # the token is not written into the page

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    chromium(*common, "--window-size=1400,1560", f"--user-data-dir={tmp_path / 'chrome-shot'}",
             f"--screenshot={shot}", url)
    assert shot.is_file() and shot.stat().st_size > 20_000, "screenshot missing or blank"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cluster_view_shows_partition_owners_totals_and_the_groups_series(pipeline, workers, tmp_path):
    w1 = Worker(pipeline, "w1")
    workers.append(w1.start())
    w2 = Worker(pipeline, "w2")
    workers.append(w2.start())

    def split() -> dict | None:
        c = stats(w1, "cluster")["cluster"]
        owned = [set(w["partitions"]) for w in c["workers"] if w["ok"]]
        if len(owned) == 2 and all(owned) and owned[0] | owned[1] == {0, 1, 2, 3} and not owned[0] & owned[1]:
            return c
        return None

    wait_for(split, 90, "both workers to own partitions", w1)
    wait_sampling(w1)
    wait_sampling(w2)
    valid = list(generate(300, n_users=50, n_items=120, seed=12))
    send_events(pipeline.bootstrap, pipeline.events, valid)
    both = lambda: stats(w1, "summary")["scored"] + stats(w2, "summary")["scored"] >= len(valid)  # noqa: E731
    wait_for(both, 90, "every event scored", w1)
    time.sleep(1.5)
    for viewer, other in ((w1, w2), (w2, w1)):
        c = stats(viewer, "cluster")["cluster"]
        urls = {w["url"]: w for w in c["workers"]}
        assert set(urls) == {w1.url, w2.url}
        assert urls[viewer.url]["self"] and not urls[other.url]["self"]
        assert c["totals"]["workers"] == 2 and c["totals"]["partitions"] == 4 and c["totals"]["unreachable"] == 0
        assert c["totals"]["scored"] == len(valid)
        mine = stats(viewer, "summary")
        assert sorted(urls[viewer.url]["partitions"]) == mine["partitions"]

    # the group's series: both workers' samples merged on one clock, rates added up
    c = stats(w1, "cluster")["cluster"]
    group = c["series"]
    assert group["t"] and all(len(v) == len(group["t"]) for k, v in group.items() if k != "lag")
    own = [stats(w, "local") for w in (w1, w2)]
    counted = sum(sum(o["series"]["events_s"]) for o in own)
    merged = sum(v or 0 for v in group["events_s"])
    assert counted >= len(valid) * 0.9 and merged == pytest.approx(counted, rel=0.1), (merged, counted)
    assert set(group["lag"]) == set().union(*(set(o["lag"]) for o in own))
    judged = [stats(w, "summary")["quality"]["judged"] for w in (w1, w2)]
    assert c["quality"]["judged"] == sum(judged) > 0
    later = stats(w1, f"cluster&since={group['t'][-1] - 3}")["cluster"]["series"]["t"]
    assert later and all(t > group["t"][-1] - 3 for t in later)
    assert w1.get("/api/stats?scope=peer&since=soon")[0] == 400

    # the page draws the whole group
    dump = chromium("--virtual-time-budget=5000", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chrome'}",
                    "--dump-dom", f"{w1.url}/dashboard")
    dom = dump.stdout.decode("utf-8", "replace")
    assert 'data-state="live"' in dom, (dump.stderr.decode()[-2000:], dom[:2000])
    assert attr(dom, "view-scope", "data-scope") == "group" and attr(dom, "view-scope", "data-workers") == "2"
    for chart in ("chart-throughput", "chart-latency", "chart-lag", "chart-quality"):
        assert int(attr(dom, chart, "data-points")) > 0, chart
    shot = ARTIFACTS / "dashboard-group.png"
    ARTIFACTS.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    chromium("--virtual-time-budget=5000", "--window-size=1400,1560", f"--user-data-dir={tmp_path / 'chrome-shot'}",
             f"--screenshot={shot}", f"{w1.url}/dashboard")
    assert shot.is_file() and shot.stat().st_size > 20_000, "screenshot missing or blank"
