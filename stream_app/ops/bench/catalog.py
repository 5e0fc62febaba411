"""One catalogue size of a benchmark run, from its topics and model to its section of the report.

A fresh worker drains a backlog (the maximum sustained rate); for the headline catalogue the same
worker then serves streams at fixed fractions of that rate (latency) and through a hot swap of the
deep model, and the passthrough ceiling and the naive per-event worker read the same topics.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# the submodules by their full names: a ``from stream_app.ops.bench import`` here would import the
# package, whose ``__init__`` imports this module
import stream_app.ops.bench.load as load
import stream_app.ops.bench.measure as measure
import stream_app.ops.bench.profile as profile
from stream_app.kafka import KafkaConnection, kafka_consumer
from stream_app.ops.bench.procs import BenchGroup, Names, spawn_passthrough, train_model
from stream_app.settings import Settings

if TYPE_CHECKING:
    from models.deep.registry import Registry

__all__ = ["run_catalog"]


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


class _CatalogRun:
    """The shared state of one catalogue's run: its topics, backlog, model registry and report section."""

    def __init__(self, settings: Settings, run: str, n_items: int, cfg: dict[str, Any], work: Path,
                 log: Callable[[str], None]) -> None:
        self.settings, self.n_items, self.cfg, self.work, self.log = settings, n_items, cfg, work, log
        self.names = Names(run, f"{n_items // 1000}k" if n_items >= 1000 else str(n_items))
        self.naive_topic = f"{self.names.prefix}-naive-recommendations"
        self.out: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.pairs: list[tuple[bytes, bytes]] = []

    def prepare(self) -> Registry:
        """Create the topics, make the backlog and train and promote the first model; return its registry."""
        from models.deep.registry import Registry
        from stream_app import broker

        names, cfg, parts = self.names, self.cfg, self.settings.events_partitions
        broker.ensure_topics(self.settings.kafka_connection(), {**names.topics(parts), self.naive_topic: parts})
        self.out.update(items=self.n_items, users=cfg["users"], backlog_events=cfg["events"])
        self.events = load.make_events(cfg["events"], self.n_items, cfg["users"], seed=0)
        self.pairs = load.encode_events(self.events)
        t0 = time.perf_counter()
        registry = Registry(self.work / f"registry-{names.label}")
        version, _ = registry.save(train_model(self.events, self.n_items, 0, cfg["quick"]), promote_if_better=False)
        registry.promote(version)
        self.out["model"] = {"version": version, "train_s": round(time.perf_counter() - t0, 2),
                             "vocabulary": registry.manifest(version).get("model", {}).get("n_items")}
        self.log(f"catalogue {self.n_items}: model {version} trained in {self.out['model']['train_s']}s; "
                 "producing the backlog")
        return registry

    def _send_backlog(self) -> None:
        self.out["backlog_send"], _ = _produce(self.settings.kafka_connection(), self.names.events, self.pairs, 0.0,
                                               self.work, f"{self.names.label}-backlog", timeout=600)

    def drain(self) -> BenchGroup:
        """Time the main worker draining the backlog; return the worker, still running."""
        # one worker drains a backlog produced before it starts; several start first and get the
        # backlog once the group has split the partitions, so no rebalance falls inside the drain
        cfg, names = self.cfg, self.names
        if cfg["workers"] == 1:
            self._send_backlog()
        drain, worker = _drain_worker(self.settings, names, self.work, "main", len(self.pairs), cfg["drain_timeout"],
                                      names.recommendations, self.log,
                                      profile_to=cfg["profile"] / f"drain-{names.label}.txt" if cfg["profile"] else None,
                                      workers=cfg["workers"],
                                      before_drain=self._send_backlog if cfg["workers"] > 1 else None)
        self.out["drain"] = drain
        self.out["events_per_s"] = drain["events_per_s"]
        return worker

    def under_load(self, registry: Registry, max_rate: float) -> int:
        """Latency at each load level, then the hot swap; return how many events these streams sent."""
        cfg = self.cfg
        stream = load.encode_events(load.make_events(
            int(max_rate * cfg["rate_s"] * sum(cfg["levels"]) + max_rate * 0.5 * cfg["swap_s"]) + 10,
            self.n_items, cfg["users"], seed=1))
        pos = self._latency_levels(stream, max_rate)
        if cfg["swap"]:
            pos = self._hot_swap(registry, stream, pos, max_rate)
        return pos

    def _latency_levels(self, stream: list[tuple[bytes, bytes]], max_rate: float) -> int:
        pos = 0
        self.out["latency"] = {}
        for level in self.cfg["levels"]:
            n = max(10, int(max_rate * level * self.cfg["rate_s"]))
            lat, _ = _latency_run(self.settings, self.names, stream[pos:pos + n], max_rate * level, self.work,
                                  f"{self.names.label}-rate{level}")
            pos += n
            self.out["latency"][f"{level:.0%}"] = lat
            self.log(f"  {level:.0%} load ({max_rate * level:.0f}/s): p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms")
        return pos

    def _hot_swap(self, registry: Registry, stream: list[tuple[bytes, bytes]], pos: int, max_rate: float) -> int:
        cfg = self.cfg
        new_version, _ = registry.save(train_model(self.events, self.n_items, 1, cfg["quick"]), promote_if_better=False)
        n = max(10, int(max_rate * 0.5 * cfg["swap_s"]))
        promoted: list[float] = []

        def promote_midway() -> None:
            time.sleep(cfg["swap_s"] / 2)
            promoted.append(time.time())
            registry.promote(new_version)

        lat, recs = _latency_run(self.settings, self.names, stream[pos:pos + n], max_rate * 0.5, self.work,
                                 f"{self.names.label}-swap", during=promote_midway)
        pos += n
        swap = measure.swap_gap(recs, promoted[0], new_version)
        swap.update(version=new_version, rate=round(max_rate * 0.5, 1), latency_p99_ms=lat["p99_ms"])
        self.out["swap"] = swap
        self.log(f"  hot swap at 50% load: largest output gap {swap['gap_during_ms']} ms "
                 f"(before: {swap['gap_before_ms']} ms)")
        return pos

    def ceiling(self, produced: int) -> None:
        """Forward every event sent so far through a bare aiokafka passthrough and time it."""
        names, kafka = self.names, self.settings.kafka_connection()
        proc = spawn_passthrough(kafka, names.events, names.passthrough, f"{names.prefix}-ceiling", produced)
        try:
            proc.communicate(timeout=max(120.0, produced / 1000.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        got = _wait_output(self.settings.kafka_connection(), names.passthrough, produced, 10.0)
        records = _read_all(self.settings.kafka_connection(), names.passthrough, got)
        self.out["ceiling"] = {"events_per_s": measure.steady_rate([r.ts_ms for r in records]),
                               "forwarded": len(records)}
        self.log(f"  ceiling (aiokafka passthrough): {self.out['ceiling']['events_per_s']:.0f} events/s")

    def naive(self) -> None:
        """Time a per-event worker (no batching) draining the same topic."""
        cfg = self.cfg
        naive, nworker = _drain_worker(self.settings, self.names, self.work, "naive", cfg["naive_events"],
                                       cfg["naive_timeout"], self.naive_topic, self.log, workers=cfg["workers"],
                                       STREAMREC_BATCH_MAX="1", STREAMREC_BATCH_WAIT_MS="0")
        nworker.kill9()  # its figures are taken; a clean stop would first score its whole buffer, one event at a time
        self.out["naive"] = naive


def run_catalog(settings: Settings, run: str, n_items: int, cfg: dict[str, Any], headline: bool, work: Path,
                log: Callable[[str], None]) -> dict[str, Any]:
    """Benchmark catalogue size ``n_items`` (everything when ``headline``); return its report section."""
    c = _CatalogRun(settings, run, n_items, cfg, work, log)
    registry = c.prepare()
    worker = c.drain()
    produced = len(c.pairs)
    try:
        if headline and c.out["drain"]["events_per_s"] > 0:
            produced += c.under_load(registry, c.out["drain"]["events_per_s"])
        c.out.update(worker.peak_rss())
    finally:
        worker.stop()
    c.out["state"] = measure.state_sizes(settings.kafka_connection(), worker.changelog)
    c.out["events_applied"] = produced
    if headline and not cfg["skip_ceiling"]:
        c.ceiling(produced)
    if headline and not cfg["skip_naive"]:
        c.naive()
    return c.out
