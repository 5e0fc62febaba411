"""End-to-end benchmark of streamrec through the real broker (``streamrec bench --out FILE.json``).

For each catalogue size a fresh worker (full pipeline: state, online learning, deep scoring,
publishing) drains a pre-produced backlog of synthetic events; its steady output rate is the
maximum sustained rate. For the headline catalogue (50k items by default) the same run also
measures, on the same topics and messages: event->recommendation latency at fixed fractions of
that rate, the output gap while a new deep model is promoted under load, the ceiling (a bare
aiokafka passthrough) and a naive per-event worker (``STREAMREC_BATCH_MAX=1``,
``STREAMREC_BATCH_WAIT_MS=0``). See ``docs/BENCHMARKS.md``.

>>> headline_items([10_000, 50_000, 100_000]), headline_items([2_000])
(50000, 2000)
"""

from __future__ import annotations

import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from stream_app.ops.bench.catalog import run_catalog
from stream_app.ops.bench.procs import ROOT, delete_topics, local_broker
from stream_app.ops.bench.requests import measure_requests
from stream_app.settings import Settings

DEFAULT_ITEMS = (10_000, 50_000, 100_000)
LEVELS = (0.5, 0.7, 1.0)
GOALS = {  # name: (field, comparison, target)
    "events_per_s >= 10000 at 50k items": ("events_per_s", ">=", 10_000),
    ">= 50% of the passthrough ceiling": ("ceiling_ratio", ">=", 0.5),
    ">= 5x the naive pipeline": ("naive_speedup", ">=", 5.0),
    "p99 <= 25 ms at 70% load": ("p99_ms", "<=", 25.0),
    "swap gap < 5 ms": ("swap_pause_ms", "<", 5.0),
    "state <= 2 KiB per user": ("state_bytes_per_user", "<=", 2048),
}


def headline_items(items: Sequence[int]) -> int:
    """The catalogue size of the top-level numbers: 50k when measured, else the closest size."""
    return min(items, key=lambda n: (abs(n - 50_000), n))


def _machine() -> dict[str, Any]:
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(), "load_avg_at_start": list(__import__("os").getloadavg())}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["memory_bytes"] = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        import torch

        from stream_app.broker import KAFKA_VERSION
        info.update(torch=torch.__version__, kafka=KAFKA_VERSION)
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True, timeout=5).stdout.strip() or None
    except Exception:
        pass
    return info


def _config(quick: bool, items: Sequence[int] | None, events: int | None, users: int | None,
            skip_naive: bool, skip_ceiling: bool, skip_swap: bool, profile_dir: Path | None = None,
            workers: int = 1) -> dict[str, Any]:
    if quick:
        cfg: dict[str, Any] = {"items": [2_000], "events": 3_000, "users": 300, "rate_s": 2.0, "swap_s": 4.0,
               "naive_events": 1_500, "naive_timeout": 20.0, "drain_timeout": 90.0}
    else:
        cfg = {"items": list(DEFAULT_ITEMS), "events": 60_000, "users": 10_000, "rate_s": 10.0, "swap_s": 12.0,
               "naive_events": 20_000, "naive_timeout": 60.0, "drain_timeout": 600.0}
    if items:
        cfg["items"] = sorted(set(items))
    if events:
        cfg["events"] = events
        cfg["naive_events"] = min(cfg["naive_events"], events)
    if users:
        cfg["users"] = users
    cfg.update(quick=quick, levels=list(LEVELS), skip_naive=skip_naive, skip_ceiling=skip_ceiling,
               swap=not skip_swap, profile=profile_dir, workers=workers)
    return cfg


def _checked_config(quick: bool, items: Sequence[int] | None, events: int | None, users: int | None,
                    skip_naive: bool, skip_ceiling: bool, skip_swap: bool, profile_dir: Path | None,
                    workers: int) -> dict[str, Any]:
    """``_config`` of valid arguments (``ValueError`` otherwise), with ``profile_dir`` created."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cfg = _config(quick, items, events, users, skip_naive, skip_ceiling, skip_swap, profile_dir, workers)
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    for n in cfg["items"]:
        if n < 10:
            raise ValueError(f"catalogue sizes must be >= 10 items, got {n}")
    if cfg["events"] < 100:
        raise ValueError(f"the backlog needs >= 100 events, got {cfg['events']}")
    return cfg


def _report_head(settings: Settings, cfg: dict[str, Any], quick: bool, command: Sequence[str] | None,
                 started: float) -> dict[str, Any]:
    """The first fields of the report: when, how and where the benchmark ran."""
    return {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "command": list(command if command is not None else sys.argv), "machine": _machine(),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items() if k != "quick"} | {"quick": quick,
                       "partitions": settings.events_partitions, "broker": settings.bootstrap}}


def _run_catalogs(settings: Settings, cfg: dict[str, Any], head: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Each catalogue size's section, keyed by its size; the run's topics and files are removed after."""
    run = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix=f"streamrec-bench-{run}-"))
    catalogs: dict[str, Any] = {}
    with local_broker(settings, log):
        try:
            for n in cfg["items"]:
                catalogs[str(n)] = run_catalog(settings, run, n, cfg, n == head, work, log)
            h = catalogs[str(head)]  # fresh lists on request while events stream at half the maximum rate
            h["requests"] = measure_requests(settings, run, head, h["events_per_s"] * 0.5, cfg, work, log)
        finally:
            delete_topics(settings.kafka_connection(), f"bench-{run}-")
            shutil.rmtree(work, ignore_errors=True)
    return catalogs


def _headline(catalogs: dict[str, Any], head: int) -> dict[str, Any]:
    """The top-level numbers of the report, taken from the headline catalogue."""
    h = catalogs[str(head)]
    lat70 = h.get("latency", {}).get("70%", {})
    ceiling = h.get("ceiling", {}).get("events_per_s")
    naive = h.get("naive", {}).get("events_per_s")
    return {
        "items": head,
        "events_per_s": h["events_per_s"],
        "ceiling_events_per_s": ceiling,
        "naive_events_per_s": naive,
        "ceiling_ratio": round(h["events_per_s"] / ceiling, 3) if ceiling else None,
        "naive_speedup": round(h["events_per_s"] / naive, 2) if naive else None,
        "p50_ms": lat70.get("p50_ms"),
        "p99_ms": lat70.get("p99_ms"),
        "swap_pause_ms": h.get("swap", {}).get("gap_during_ms"),
        "peak_rss_bytes": h.get("peak_rss_bytes"),
        "state_bytes_per_user": h["state"].get("state_bytes_per_user"),
        **{k: h.get("requests", {}).get(k) for k in ("request_p50_ms", "request_p99_ms", "request_rate")},
        "catalogs": catalogs,
    }


def run_bench(settings: Settings, out: Path, quick: bool = False, items: Sequence[int] | None = None,
              events: int | None = None, users: int | None = None, skip_naive: bool = False,
              skip_ceiling: bool = False, skip_swap: bool = False, command: Sequence[str] | None = None,
              log: Callable[[str], None] = print, profile_dir: Path | None = None, workers: int = 1) -> dict[str, Any]:
    """Run the benchmark against ``settings.broker`` and write the JSON report to ``out``; return it.

    With ``profile_dir``, each catalogue's drain worker is recorded with py-spy there and the
    summary goes in the report (``catalogs.<N>.drain.profile``). ``workers`` runs the pipeline (and the
    naive one) as that many worker processes in one consumer group.
    """
    cfg = _checked_config(quick, items, events, users, skip_naive, skip_ceiling, skip_swap, profile_dir, workers)
    started = time.time()
    report = _report_head(settings, cfg, quick, command, started)
    head = headline_items(cfg["items"])
    report.update(_headline(_run_catalogs(settings, cfg, head, log), head))
    report["goals"] = _goals(report)
    report["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["seconds"] = round(time.time() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return report


def _goals(report: dict[str, Any]) -> dict[str, Any]:
    goals = {}
    for name, (fld, op, target) in GOALS.items():
        v = report.get(fld)
        ok = None if v is None or (isinstance(v, float) and math.isnan(v)) else (
            v >= target if op == ">=" else v <= target if op == "<=" else v < target)
        goals[name] = {"field": fld, "value": v, "target": f"{op} {target}", "met": ok}
    return goals


def summary_table(report: dict[str, Any]) -> str:
    """A short text table of a report (what ``streamrec bench`` prints)."""
    rows = [("catalogue items", "events/s", "peak RSS MiB", "state B/user")]
    for n, c in report["catalogs"].items():
        rss = c.get("peak_rss_bytes")
        rows.append((n, f"{c['events_per_s']:.0f}", f"{rss / 2**20:.0f}" if rss else "-",
                     str(c["state"].get("state_bytes_per_user"))))
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, width)) for r in rows]
    h = report["catalogs"][str(report["items"])]
    for level, lat in h.get("latency", {}).items():
        lines.append(f"latency at {level} of max ({lat['target_rate']:.0f}/s): p50 {lat['p50_ms']} ms, "
                     f"p99 {lat['p99_ms']} ms")
    lines.append(f"ceiling {report['ceiling_events_per_s']} events/s, naive {report['naive_events_per_s']} "
                 f"events/s, swap gap {report['swap_pause_ms']} ms")
    if report.get("request_p99_ms") is not None:
        lines.append(f"fresh lists at {report['request_rate']}/s while events stream: p50 {report['request_p50_ms']} ms, "
                     f"p99 {report['request_p99_ms']} ms")
    for name, g in report["goals"].items():
        mark = {True: "met", False: "MISSED", None: "n/a"}[g["met"]]
        lines.append(f"  [{mark}] {name} (value {g['value']})")
    return "\n".join(lines)
