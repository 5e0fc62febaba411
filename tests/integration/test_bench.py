"""`streamrec bench --quick` end to end on the real broker: the report has the contract fields
with values a working pipeline produces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stream_app.ops.bench import run_bench
from stream_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

CONTRACT = ("events_per_s", "ceiling_events_per_s", "naive_events_per_s", "p50_ms", "p99_ms", "swap_pause_ms",
            "items")


@pytest.mark.timeout(240)
def test_quick_bench_report(kafka, tmp_path):
    out = tmp_path / "bench.json"
    settings = Settings(broker=f"kafka://{kafka}", data_dir=tmp_path / "var")
    report = run_bench(settings, out, quick=True, items=[1_000], events=1_500, users=200,
                       command=["test"], log=lambda m: None)
    on_disk = json.loads(out.read_text())
    assert on_disk["items"] == report["items"] == 1_000
    for name in CONTRACT:
        assert on_disk[name] is not None, name
    assert on_disk["events_per_s"] > 0 and on_disk["naive_events_per_s"] > 0
    # A bare passthrough does strictly less work than the pipeline on the same messages.
    assert on_disk["ceiling_events_per_s"] > on_disk["events_per_s"]
    assert 0 < on_disk["p50_ms"] <= on_disk["p99_ms"] < 60_000
    assert on_disk["swap_pause_ms"] >= 0
    cat = on_disk["catalogs"]["1000"]
    assert cat["drain"]["complete"] and cat["drain"]["recommendations"] == 1_500
    assert cat["swap"]["swapped"] and cat["swap"]["version"] != cat["model"]["version"]
    assert set(cat["latency"]) == {"50%", "70%", "100%"}
    assert cat["latency"]["50%"]["received"] == cat["latency"]["50%"]["events"]
    assert cat["model"]["vocabulary"] >= 1_000  # the worker scored the whole catalogue
    assert 0 < cat["state"]["users"] <= 200 and 0 < on_disk["state_bytes_per_user"] < 64 * 1024
    assert on_disk["peak_rss_bytes"] > 50 * 2**20
    assert on_disk["machine"]["cpus"] >= 1 and on_disk["command"] == ["test"]
    assert set(on_disk["goals"]) and all(g["met"] in (True, False) for g in on_disk["goals"].values())
    # fresh lists on request while events stream: every request answered, latencies measured
    req = cat["requests"]
    assert req["answered"] == req["requests"] > 0 and req["statuses"] == {"200": req["requests"]}
    assert on_disk["request_rate"] > 0 and 0 < on_disk["request_p50_ms"] <= on_disk["request_p99_ms"]
    assert req["known_users"] > 0 and req["events_received"] == req["events"]


def test_bench_rejects_bad_items(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stream_app", "bench", "--out", str(tmp_path / "x.json"),
                        "--items", "10k"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--items" in r.stderr and "comma-separated" in r.stderr
    assert not (tmp_path / "x.json").exists()
