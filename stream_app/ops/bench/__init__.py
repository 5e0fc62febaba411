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

import numpy as np
import orjson

from stream_app.kafka import KafkaConnection, kafka_consumer
from stream_app.ops.bench import load, measure, profile
from stream_app.ops.bench.procs import ROOT, BenchGroup, Names, delete_topics, spawn_passthrough, train_model
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


def _ensure_broker(settings: Settings, log: Callable[[str], None]) -> bool:
    """Make sure a broker answers at ``settings.broker``; start the local one if not. True if started here."""
    from stream_app import broker
    from stream_app.broker.topics import probe

    if probe(settings.kafka_connection(), 3.0) is not None:
        return False
    host, port = settings.broker_host_port
    log(f"no broker at {settings.bootstrap}; starting the local one")
    broker.up(host, port, settings.kafka_data_dir, settings.kafka_cache_dir, {}, timeout=180)
    return True


def _wait_output(kafka: KafkaConnection, topic: str, expect: int, timeout: float, stall_s: float = 30.0) -> int:
    """Poll the end offsets of ``topic`` until they add up to ``expect`` (or timeout/stall); return the total."""
    from kafka import TopicPartition

    c = kafka_consumer(kafka, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        deadline, last, progressed = time.monotonic() + timeout, -1, time.monotonic()
        while True:
            total: int = sum(c.end_offsets(tps).values())
            now = time.monotonic()
            if total != last:
                last, progressed = total, now
            if total >= expect or now > deadline or now - progressed > stall_s:
                return total
            time.sleep(0.25)
    finally:
        c.close()


def _read_all(kafka: KafkaConnection, topic: str, expect: int) -> list[measure.Received]:
    col = measure.Collector(kafka, topic).start()
    col.wait(expect, timeout=max(60.0, expect / 5000.0), stall_s=10.0)
    return col.stop()


def _produce(kafka: KafkaConnection, topic: str, pairs: list[tuple[bytes, bytes]], rate: float, work: Path, tag: str, timeout: float,
             during: Callable[[], None] | None = None) -> tuple[dict[str, Any], np.ndarray]:
    seg = load.write_segment(work / f"{tag}.msgpack", pairs)
    times_path = work / f"{tag}-times.npy"
    proc = load.spawn(kafka, topic, seg, rate, times_path)
    if during is not None:
        during()
    summary = load.finish(proc, timeout)
    return summary, np.load(times_path)


def _latency_run(settings: Settings, names: Names, pairs: list[tuple[bytes, bytes]], rate: float, work: Path, tag: str,
                 during: Callable[[], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send ``pairs`` at ``rate`` and measure each event's recommendation as it arrives."""
    col = measure.Collector(settings.kafka_connection(), names.recommendations, from_end=True).start()
    try:
        expected_s = len(pairs) / rate
        summary, times = _produce(settings.kafka_connection(), names.events, pairs, rate, work, tag,
                                  timeout=expected_s * 3 + 60, during=during)
        col.wait(len(pairs), timeout=60.0, stall_s=15.0)
    finally:
        records = col.stop()
    recs = measure.parse(records)
    sends = {load.event_index(v.split(b'"event_id":"', 1)[1].split(b'"', 1)[0]): float(t)
             for (_, v), t in zip(pairs, times)}
    lat = measure.latency(recs, sends)
    lat.update(target_rate=round(rate, 1), send_rate=summary.get("send_rate"), events=len(pairs),
               received=len(recs), output_rate=measure.steady_rate([m["_ts_ms"] for m in recs]))
    return lat, recs


def _drain_worker(settings: Settings, names: Names, work: Path, name: str, expect: int, timeout: float,
                  recs_topic: str, log: Callable[[str], None], profile_to: Path | None = None,
                  workers: int = 1, before_drain: Callable[[], None] | None = None,
                  **env: str) -> tuple[dict[str, Any], BenchGroup]:
    worker = BenchGroup(settings, names, work, name, workers, STREAMREC_RECOMMENDATIONS_TOPIC=recs_topic, **env)
    worker.start()
    if before_drain is not None:  # several workers: let the group settle, then give them the backlog
        if not worker.wait_settled(settings.events_partitions):
            log("  the group did not settle on its partitions within 120 s; draining anyway")
        before_drain()
    spy = profile.start(worker.pid, profile_to) if profile_to is not None and worker.pid else None
    if profile_to is not None and spy is None:
        log("  py-spy is not installed (pip install -e '.[profile]'): no profile recorded")
    got = _wait_output(settings.kafka_connection(), recs_topic, expect, timeout)
    prof = profile.stop(spy, profile_to) if spy is not None and profile_to is not None else None
    res = measure.drain_rate(measure.parse(_read_all(settings.kafka_connection(), recs_topic, got)))
    if prof is not None:
        res["profile"] = prof
        top = ", ".join(f"{r['function']} {r['share']:.0%}" for r in prof["self"][:5])
        log(f"  profile of the drain ({prof['samples']} samples, {profile_to}): {top}")
    res.update(worker.peak_rss())
    res["workers"] = workers
    res["complete"] = got >= expect
    log(f"  {name}: {res['events_per_s']:.0f} events/s ({res['measured']} recommendations measured)")
    return res, worker


def _catalog(settings: Settings, run: str, n_items: int, cfg: dict[str, Any], headline: bool, work: Path,
             log: Callable[[str], None]) -> dict[str, Any]:
    from models.deep.registry import Registry
    from stream_app import broker

    names = Names(run, f"{n_items // 1000}k" if n_items >= 1000 else str(n_items))
    naive_topic = f"{names.prefix}-naive-recommendations"
    parts = settings.events_partitions
    broker.ensure_topics(settings.kafka_connection(), {**names.topics(parts), naive_topic: parts})
    out: dict[str, Any] = {"items": n_items, "users": cfg["users"], "backlog_events": cfg["events"]}
    events = load.make_events(cfg["events"], n_items, cfg["users"], seed=0)
    pairs = load.encode_events(events)

    t0 = time.perf_counter()
    registry = Registry(work / f"registry-{names.label}")
    version, _ = registry.save(train_model(events, n_items, 0, cfg["quick"]), promote_if_better=False)
    registry.promote(version)
    out["model"] = {"version": version, "train_s": round(time.perf_counter() - t0, 2),
                    "vocabulary": registry.manifest(version).get("model", {}).get("n_items")}
    log(f"catalogue {n_items}: model {version} trained in {out['model']['train_s']}s; producing the backlog")

    def send_backlog() -> None:
        out["backlog_send"], _ = _produce(settings.kafka_connection(), names.events, pairs, 0.0, work,
                                          f"{names.label}-backlog", timeout=600)

    # one worker drains a backlog produced before it starts; several start first and get the
    # backlog once the group has split the partitions, so no rebalance falls inside the drain
    if cfg["workers"] == 1:
        send_backlog()
    drain, worker = _drain_worker(settings, names, work, "main", len(pairs), cfg["drain_timeout"],
                                  names.recommendations, log,
                                  profile_to=cfg["profile"] / f"drain-{names.label}.txt" if cfg["profile"] else None,
                                  workers=cfg["workers"], before_drain=send_backlog if cfg["workers"] > 1 else None)
    out["drain"] = drain
    out["events_per_s"] = drain["events_per_s"]
    produced = len(pairs)
    try:
        if headline and drain["events_per_s"] > 0:
            max_rate = drain["events_per_s"]
            stream = load.encode_events(load.make_events(
                int(max_rate * cfg["rate_s"] * sum(cfg["levels"]) + max_rate * 0.5 * cfg["swap_s"]) + 10,
                n_items, cfg["users"], seed=1))
            pos = 0
            out["latency"] = {}
            for level in cfg["levels"]:
                n = max(10, int(max_rate * level * cfg["rate_s"]))
                lat, _ = _latency_run(settings, names, stream[pos:pos + n], max_rate * level, work,
                                      f"{names.label}-rate{level}")
                pos += n
                out["latency"][f"{level:.0%}"] = lat
                log(f"  {level:.0%} load ({max_rate * level:.0f}/s): p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms")
            if cfg["swap"]:
                new_version, _ = registry.save(train_model(events, n_items, 1, cfg["quick"]), promote_if_better=False)
                n = max(10, int(max_rate * 0.5 * cfg["swap_s"]))
                promoted: list[float] = []

                def promote_midway() -> None:
                    time.sleep(cfg["swap_s"] / 2)
                    promoted.append(time.time())
                    registry.promote(new_version)

                lat, recs = _latency_run(settings, names, stream[pos:pos + n], max_rate * 0.5, work,
                                         f"{names.label}-swap", during=promote_midway)
                pos += n
                swap = measure.swap_gap(recs, promoted[0], new_version)
                swap.update(version=new_version, rate=round(max_rate * 0.5, 1), latency_p99_ms=lat["p99_ms"])
                out["swap"] = swap
                log(f"  hot swap at 50% load: largest output gap {swap['gap_during_ms']} ms "
                    f"(before: {swap['gap_before_ms']} ms)")
            produced += pos
        out.update(worker.peak_rss())
    finally:
        worker.stop()
    out["state"] = measure.state_sizes(settings.kafka_connection(), worker.changelog)
    out["events_applied"] = produced
    if headline and not cfg["skip_ceiling"]:
        proc = spawn_passthrough(settings.kafka_connection(), names.events, names.passthrough, f"{names.prefix}-ceiling",
                                 produced)
        try:
            proc.communicate(timeout=max(120.0, produced / 1000.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        got = _wait_output(settings.kafka_connection(), names.passthrough, produced, 10.0)
        records = _read_all(settings.kafka_connection(), names.passthrough, got)
        out["ceiling"] = {"events_per_s": measure.steady_rate([r.ts_ms for r in records]), "forwarded": len(records)}
        log(f"  ceiling (aiokafka passthrough): {out['ceiling']['events_per_s']:.0f} events/s")
    if headline and not cfg["skip_naive"]:
        naive, nworker = _drain_worker(settings, names, work, "naive", cfg["naive_events"], cfg["naive_timeout"],
                                       naive_topic, log, workers=cfg["workers"], STREAMREC_BATCH_MAX="1",
                                       STREAMREC_BATCH_WAIT_MS="0")
        nworker.stop()
        out["naive"] = naive
    return out


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


def run_bench(settings: Settings, out: Path, quick: bool = False, items: Sequence[int] | None = None,
              events: int | None = None, users: int | None = None, skip_naive: bool = False,
              skip_ceiling: bool = False, skip_swap: bool = False, command: Sequence[str] | None = None,
              log: Callable[[str], None] = print, profile_dir: Path | None = None, workers: int = 1) -> dict[str, Any]:
    """Run the benchmark against ``settings.broker`` and write the JSON report to ``out``; return it.

    With ``profile_dir``, each catalogue's drain worker is recorded with py-spy there and the
    summary goes in the report (``catalogs.<N>.drain.profile``). ``workers`` runs the pipeline (and the
    naive one) as that many worker processes in one consumer group.
    """
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
    started = time.time()
    report: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                    "command": list(command if command is not None else sys.argv), "machine": _machine(),
                    "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items() if k != "quick"} | {"quick": quick,
                               "partitions": settings.events_partitions, "broker": settings.bootstrap}}
    run = uuid.uuid4().hex[:8]
    head = headline_items(cfg["items"])
    started_broker = _ensure_broker(settings, log)
    work = Path(tempfile.mkdtemp(prefix=f"streamrec-bench-{run}-"))
    try:
        catalogs = {}
        for n in cfg["items"]:
            catalogs[str(n)] = _catalog(settings, run, n, cfg, n == head, work, log)
    finally:
        delete_topics(settings.kafka_connection(), f"bench-{run}-")
        shutil.rmtree(work, ignore_errors=True)
        if started_broker:
            from stream_app import broker

            broker.down(settings.kafka_data_dir)
    h = catalogs[str(head)]
    lat70 = h.get("latency", {}).get("70%", {})
    ceiling = h.get("ceiling", {}).get("events_per_s")
    naive = h.get("naive", {}).get("events_per_s")
    report.update({
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
        "catalogs": catalogs,
    })
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
    for name, g in report["goals"].items():
        mark = {True: "met", False: "MISSED", None: "n/a"}[g["met"]]
        lines.append(f"  [{mark}] {name} (value {g['value']})")
    return "\n".join(lines)
