"""A real Prometheus scrapes two workers of one group, and every query of the Grafana dashboard answers.

The scrape configuration is ``docker/prometheus.yml``'s worker job itself (job name, metrics path,
relabelling), with its Docker DNS discovery swapped for a file of targets that lists the two
workers this test starts, and a one-second scrape interval. Each ``targets[].expr`` of every
dashboard in ``docker/grafana/dashboards/`` is then evaluated through ``/api/v1/query``, with the
template variables replaced as Grafana would (``$instance`` = All), and must return samples.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from models.base import Interaction
from models.deep.registry import Registry
from models.deep.train import TrainConfig, train
from stream_app.data.synthetic import generate
from stream_app.ops.testbed import ROOT, free_port, producer
from tests.integration.conftest import Worker
from tests.integration.test_scaleout import wait_split

pytestmark = pytest.mark.integration

DOCKER = ROOT / "docker"
WORKER_JOB = "streamrec-worker"
SCRAPE_S = 1
# Grafana's $__rate_interval is at least four scrape intervals; a little more keeps every rate
# window holding several samples even when a scrape is late on a busy machine.
RATE_WINDOW = f"{8 * SCRAPE_S}s"
# Grafana's "All" for a multi-value variable is its allValue (".*" for $instance)
VARIABLE_ALL = {"instance": ".*"}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """``(dashboard file, panel title, expr)`` of every query target of every provisioned dashboard."""
    out: list[tuple[str, str, str]] = []

    def walk(name: str, panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(name, panel.get("panels") or [])  # collapsed rows hold their panels
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    out.append((name, panel.get("title", "?"), target["expr"]))

    for path in sorted((DOCKER / "grafana" / "dashboards").glob("*.json")):
        walk(path.name, json.loads(path.read_text())["panels"])
    return out


def grafana_expr(expr: str, variables: dict[str, str] = VARIABLE_ALL) -> str:
    """``expr`` with Grafana's variables replaced; an unknown variable fails the test."""
    expr = expr.replace("$__rate_interval", RATE_WINDOW).replace("$__interval", f"{SCRAPE_S}s")
    for name, value in variables.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    left = re.findall(r"\$\{?\w+", expr)
    assert not left, f"dashboard variable(s) {left} have no substitute in this test: {expr}"
    return expr


def scrape_config(targets_file: Path) -> dict[str, Any]:
    """``docker/prometheus.yml`` with the worker job discovered from ``targets_file`` instead of DNS."""
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    jobs = [j for j in config["scrape_configs"] if j["job_name"] == WORKER_JOB]
    assert len(jobs) == 1, f"docker/prometheus.yml has no single {WORKER_JOB!r} job"
    job = {k: v for k, v in jobs[0].items() if not k.endswith("_sd_configs")}
    assert job.get("relabel_configs"), "the worker job keeps its relabelling"
    job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": f"{SCRAPE_S}s"}]
    job["scrape_interval"] = job["scrape_timeout"] = f"{SCRAPE_S}s"
    config["global"] = {**config.get("global", {}), "scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": "5s"}
    config["scrape_configs"] = [job]
    return config


class Prometheus:
    """A ``prometheus`` process on a free loopback port, its data and log under ``root``."""

    def __init__(self, binary: str, config: dict[str, Any], root: Path) -> None:
        self.port = free_port()
        self.root = root
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = root / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
                stdout=log, stderr=subprocess.STDOUT)

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
        return orjson.loads(body) if path.startswith("/api/") else body

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited:\n{self.log.read_text()[-3000:]}"
            try:
                self.get("/-/ready")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        raise AssertionError(f"prometheus not ready within {timeout}s:\n{self.log.read_text()[-3000:]}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        pytest.skip("prometheus is not installed (`make prometheus` installs Debian's package as root)")
    return found


def feed(bootstrap: str, topic: str, stop: threading.Event, rate: float = 150.0) -> None:
    """Synthetic events at ``rate`` per second until ``stop``; every 40th record is not JSON (dead-lettered)."""
    p = producer(bootstrap)
    start = time.perf_counter()
    for i, ev in enumerate(generate(10**6, n_users=200, n_items=400, seed=11)):
        if stop.is_set():
            break
        value = b"{not json" if i % 40 == 39 else orjson.dumps(ev)
        p.send(topic, key=ev["user_id"].encode(), value=value)
        ahead = (i + 1) / rate - (time.perf_counter() - start)
        if ahead > 0:
            time.sleep(ahead)
    p.flush()
    p.close()


def start_all(ws: list[Worker]) -> None:
    """Start the workers side by side (each waits for its own /health)."""
    errors: list[BaseException] = []

    def one(w: Worker) -> None:
        try:
            w.start()
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(w,)) for w in ws]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s (last answer: {last})")


def test_prometheus_scrapes_two_workers_and_every_dashboard_query_returns_data(
        prometheus_binary, pipeline, workers, tmp_path):
    t0 = time.monotonic()
    queries = dashboard_queries()
    assert queries, "no dashboard queries found"

    # a promoted deep model, so the model panels (swaps, version serving) have something to show
    history = list(generate(1500, n_users=200, n_items=400, seed=11))
    registry = Registry(pipeline.root / "registry")
    inter = [Interaction(e["user_id"], e["item_id"], e["type"], e["ts"]) for e in history]
    result = train(inter, TrainConfig(dim=16, layers=1, heads=1, epochs=1, max_len=20), device="cpu", progress=False)
    version, _ = registry.save(result, promote_if_better=False)
    registry.promote(version)

    ws = [Worker(pipeline, name, STREAMREC_MODEL_POLL_S="0.5") for name in ("w1", "w2")]
    workers.extend(ws)
    start_all(ws)
    wait_split(ws, pipeline.partitions)  # both workers hold partitions before traffic starts
    print(f"\nworkers ready {time.monotonic() - t0:.1f}s after the test started")

    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{w.port}" for w in ws], "labels": {}}]))
    prom = Prometheus(prometheus_binary, scrape_config(targets), tmp_path)
    try:
        prom.wait_ready()
        stop = threading.Event()
        feeder = threading.Thread(target=feed, args=(pipeline.bootstrap, pipeline.events, stop), daemon=True)
        feeder.start()
        try:
            _check_queries(prom, ws, queries, t0)
        finally:
            stop.set()
            feeder.join(30)
    finally:
        prom.stop()


def _check_queries(prom: Prometheus, ws: list[Worker], queries: list[tuple[str, str, str]], t0: float) -> None:
    instances = {f"127.0.0.1:{w.port}" for w in ws}
    up = wait_for(lambda: {r["metric"]["instance"] for r in prom.query(f'up{{job="{WORKER_JOB}"}} == 1')} == instances,
                  30, f"both workers up in Prometheus ({sorted(instances)})")
    assert up
    # Grafana's $instance choices: label_values(up{job="streamrec-worker"}, instance)
    values = prom.get("/api/v1/label/instance/values", **{"match[]": f'up{{job="{WORKER_JOB}"}}'})
    assert set(values["data"]) == instances

    # both workers have taken partitions, learned, swapped the model in and dead-lettered something
    for ask in ("sum by (instance) (streamrec_recommendations_total) > 0",
                'sum by (instance) (streamrec_model_swaps_total{result="ok"}) > 0',
                "sum by (instance) (streamrec_dlq_total) > 0"):
        try:
            wait_for(lambda ask=ask: {r["metric"]["instance"] for r in prom.query(ask)} == instances or None, 45, ask)
        except AssertionError:
            raise AssertionError(f"{ask}: {prom.query(ask)} (want {sorted(instances)})\n{ws[-1].log_tail(30)}") from None
    time.sleep(int(RATE_WINDOW.rstrip("s")) + 2 * SCRAPE_S)  # a full rate window of scrapes with traffic in it

    # every query with $instance = All, then with one worker picked (as a regex, as Grafana sends it)
    # (inside a PromQL string each regex backslash is written twice, as Grafana does)
    one_worker = {"instance": re.escape(sorted(instances)[0]).replace("\\", "\\\\")}
    empty, nan_only = [], []
    for variables in (VARIABLE_ALL, one_worker):
        for name, title, expr in queries:
            result = prom.query(grafana_expr(expr, variables))
            where = f"{name} / {title} (instance={variables['instance']}): {expr}"
            if not result:
                empty.append(where)
            elif all(r["value"][1] == "NaN" for r in result):
                nan_only.append(where)
    print(f"{len(queries)} dashboard queries answered twice {time.monotonic() - t0:.1f}s after the test started")
    assert not empty, "dashboard queries with no data:\n" + "\n".join(empty)
    assert not nan_only, "dashboard queries with only NaN:\n" + "\n".join(nan_only)

    # the group view sums over both workers: their counts add up to the total
    per = {r["metric"]["instance"]: float(r["value"][1])
           for r in prom.query("sum by (instance) (streamrec_recommendations_total)")}
    total = float(prom.query("sum(streamrec_recommendations_total)")[0]["value"][1])
    assert set(per) == instances and all(v > 0 for v in per.values())
    assert abs(sum(per.values()) - total) < 1e-6
    assert float(prom.query(f'count(up{{job="{WORKER_JOB}"}} == 1)')[0]["value"][1]) == len(ws)


def test_promtool_accepts_the_docker_configuration(prometheus_binary, tmp_path):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool is not installed (it comes with Debian's prometheus package)")
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    (tmp_path / "generated.yml").write_text(yaml.safe_dump(scrape_config(targets)))
    for path in (DOCKER / "prometheus.yml", tmp_path / "generated.yml"):
        done = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{path}: {done.stdout}{done.stderr}"
