"""``streamrec demo`` / ``make demo``: the whole system on one machine, stopped by Ctrl-C."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream_app.ops.children import tie
from stream_app.ops.demo_runs import DemoRun, new_events, new_run, prune_folders, prune_topics, start_at_end
from stream_app.settings import Settings

if TYPE_CHECKING:
    from stream_app.kafka import KafkaConnection

log = logging.getLogger(__name__)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with status {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the worker did not answer on {url} within {timeout:.0f}s")


def start_worker(s: Settings, log_path: Path, env_extra: dict[str, Any] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **(env_extra or {}))
    with open(log_path, "ab") as log:  # the worker gets its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "stream_app", "worker"], stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=tie(),
        )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def train_when_ready(s: Settings, total: int, rate: float, stop: threading.Event, run: DemoRun,
                     conn: KafkaConnection, start: dict[int, int]) -> None:
    """Once part of the stream is in, train a deep model on this run's events (the worker hot-swaps it)."""
    wait = min(20.0, 0.3 * total / rate) if rate else 5.0
    if stop.wait(wait):
        return
    n = new_events(conn, s.events_topic, start)
    print(f"[demo] training the deep model on this run's {n} events so far (`streamrec train`) ...", flush=True)
    log_path = s.data_dir / "demo-train.log"
    with open(log_path, "ab") as log:
        done = subprocess.run([sys.executable, "-m", "stream_app", "train", "--epochs", "3", "--no-progress",
                               "--max-events", str(max(n, 1))],
                              stdout=subprocess.PIPE, stderr=log, env=dict(os.environ, **run.env))
    if done.returncode == 0:
        print(f"[demo] trained: {done.stdout.decode().strip()[:300]}", flush=True)
        print("[demo] the worker swaps the promoted model in; `source: deep` items follow", flush=True)
    else:
        print(f"[demo] training failed (see {log_path}); the worker keeps serving without a deep model",
              flush=True)


def _start_broker(s: Settings) -> bool:
    """Start the local broker with the demo's topics; return whether it was running already."""
    from stream_app import broker

    host, port = s.broker_host_port
    print(f"[demo] starting Kafka on {host}:{port} (first run downloads it from Maven Central) ...", flush=True)
    topics = s.topic_partitions()
    was_running: bool = broker.status(host, port, s.kafka_data_dir)["running"]
    broker.up(host, port, s.kafka_data_dir, s.kafka_cache_dir, topics, configs=s.topic_configs())
    return was_running


def _print_urls(s: Settings) -> None:
    print(
        f"[demo] worker up. Watch it:\n"
        f"         dashboard        {s.web_url}/dashboard\n"
        f"         metrics          {s.web_url}/metrics\n"
        f"         a user's state   {s.web_url}/users/<user_id>/state\n"
        f"         their last list  {s.web_url}/users/<user_id>/recommendations\n"
        f"         recommendations  .venv/bin/streamrec consume",
        flush=True,
    )


def _event_source(dataset: Path | None, fmt: str, events: int) -> tuple[Iterable[Any], int, str]:
    """The events to replay, how many there are, and how to name them: ``dataset``, else a synthetic stream."""
    source: Iterable[Any]
    if dataset is not None:
        from stream_app.data.ordering import time_ordered

        replay = time_ordered(dataset, fmt, errors="keep")  # streamed in time order, bounded memory
        source, total = replay, len(replay)  # len() sorts; its temporary files go when the replay ends or at exit
        label = f"{dataset} ({fmt})"
    else:
        from stream_app.data.synthetic import generate

        source, total, label = generate(events, n_users=2000, n_items=5000, seed=7), events, "synthetic stream"
    return source, total, label


def _start_feed(s: Settings, conn: KafkaConnection, source: Iterable[Any], total: int, rate: float,
                stop: threading.Event, run: DemoRun, start: dict[int, int]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start the producer and the trainer threads; return the producer and the dict its result lands in."""
    from stream_app.cli.produce import produce_events

    result: dict[str, Any] = {}

    def feed() -> None:
        result["out"] = produce_events(source, conn, rate=rate, total=total, progress=False,
                                       topic=s.events_topic)

    producer = threading.Thread(target=feed, daemon=True)
    producer.start()
    trainer = threading.Thread(target=train_when_ready, args=(s, total, rate, stop, run, conn, start), daemon=True)
    trainer.start()
    return producer, result


def _follow(s: Settings, conn: KafkaConnection, worker: subprocess.Popen[bytes], worker_log: Path,
            producer: threading.Thread, result: dict[str, Any], keep_running: bool, stop: threading.Event) -> None:
    """Print about one recommendation a second until the stream is done (or ``stop``, with ``keep_running``)."""
    from stream_app.cli.consume import describe
    from stream_app.kafka import kafka_consumer

    consumer = kafka_consumer(conn, s.recommendations_topic, group_id=None, auto_offset_reset="latest",
                              enable_auto_commit=False, consumer_timeout_ms=1000)
    seen, last_print, started = 0, 0.0, time.monotonic()
    while not stop.is_set():
        for record in consumer:
            seen += 1
            if time.monotonic() - last_print > 1.0:
                last_print = time.monotonic()
                print(f"  [{seen:>7} recs] {describe(record.value)}", flush=True)
        if worker.poll() is not None:
            raise RuntimeError(f"the worker stopped (status {worker.returncode}); see {worker_log}")
        if not producer.is_alive() and "out" in result:
            sent, _, secs = result.pop("out")
            print(f"[demo] stream done: {sent} events in {secs:.1f}s; {seen} recommendations so far "
                  f"({time.monotonic() - started:.0f}s)", flush=True)
            if not keep_running:
                time.sleep(3)
                break
            print("[demo] still serving; Ctrl-C stops the worker and the broker", flush=True)
    consumer.close()


def _forget_earlier_runs(conn: KafkaConnection, run: DemoRun) -> None:
    """Delete earlier runs' topics and all but the newest data folders (best effort: a failure is only logged)."""
    from kafka.errors import KafkaError

    gone = prune_folders(run)
    try:
        topics = prune_topics(conn, run)
    except KafkaError as exc:
        log.warning("could not delete earlier demo runs' topics (%s); they only take disk space", exc)
        topics = []
    if gone or topics:
        print(f"[demo] removed {len(gone)} earlier run folder(s) and {len(topics)} of their topics", flush=True)


def run_demo(s: Settings, dataset: Path | None, fmt: str, events: int, rate: float, keep_running: bool) -> None:
    from stream_app import broker

    conn = s.kafka_connection()  # TLS / SASL options for every client of the demo
    run = new_run(s)
    rs = run.settings(s)  # the run's own group, shared topic and data folder
    was_running = _start_broker(rs)
    _forget_earlier_runs(conn, run)
    start = start_at_end(conn, run, s.events_topic)
    worker_log = rs.data_dir / "demo-worker.log"
    print(f"[demo] starting a worker (run {run.name}, log: {worker_log}) ...", flush=True)
    worker = start_worker(rs, worker_log, env_extra=run.env)
    stop = threading.Event()
    try:
        _wait_http(f"{s.web_url}/health", 120, worker)
        _print_urls(s)
        source, total, label = _event_source(dataset, fmt, events)
        print(f"[demo] replaying {total} events from {label} at "
              f"{'full speed' if not rate else f'{rate:.0f} events/s'}; recommendations follow:", flush=True)
        producer, result = _start_feed(rs, conn, source, total, rate, stop, run, start)
        _follow(s, conn, worker, worker_log, producer, result, keep_running, stop)
    except KeyboardInterrupt:
        print("\n[demo] stopping ...", flush=True)
    finally:
        stop.set()
        stop_process(worker)
        if not was_running:
            broker.down(s.kafka_data_dir)
        print("[demo] stopped", flush=True)
