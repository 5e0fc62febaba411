"""Integration fixtures: one real Kafka broker for the session, workers as real processes.

Each test gets its own topic names and consumer group (settings ``STREAMREC_*_TOPIC`` and
``STREAMREC_APP_ID``), so tests share the broker without seeing each other's records.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_app import broker

ROOT = Path(__file__).resolve().parents[2]
KAFKA_PORT = int(os.environ.get("STREAMREC_TEST_KAFKA_PORT", "39092"))
CACHE = Path.home() / ".cache" / "streamrec" / "kafka"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_pair_free(port: int) -> bool:
    for p in (port, port + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


@pytest.fixture(scope="session")
def kafka(tmp_path_factory) -> Iterator[str]:
    """A real broker for the whole session, on the first free port pair from 39092 up."""
    port = next(p for p in range(KAFKA_PORT, KAFKA_PORT + 200, 2) if _port_pair_free(p))
    data = tmp_path_factory.mktemp("kafka")
    broker.up("127.0.0.1", port, data, CACHE, {}, timeout=180)
    yield f"127.0.0.1:{port}"
    broker.down(data)


@dataclass
class Pipeline:
    """Names and settings of one isolated pipeline on the shared broker."""

    bootstrap: str
    root: Path
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    partitions: int = 4

    @property
    def events(self) -> str:
        return f"events-{self.name}"

    @property
    def recommendations(self) -> str:
        return f"recommendations-{self.name}"

    @property
    def dlq(self) -> str:
        return f"events-dlq-{self.name}"

    def env(self, worker: str = "w1", **extra: str) -> dict:
        env = dict(os.environ)
        env.update(
            STREAMREC_BROKER=f"kafka://{self.bootstrap}",
            STREAMREC_APP_ID=f"streamrec-{self.name}",
            STREAMREC_EVENTS_TOPIC=self.events,
            STREAMREC_RECOMMENDATIONS_TOPIC=self.recommendations,
            STREAMREC_DLQ_TOPIC=self.dlq,
            STREAMREC_EVENTS_PARTITIONS=str(self.partitions),
            STREAMREC_DATA_DIR=str(self.root / worker),
            STREAMREC_REGISTRY_DIR=str(self.root / "registry"),
            STREAMREC_LOG_LEVEL="info",
            STREAMREC_CHECKPOINT_INTERVAL_S="2",
        )
        env.update(extra)
        return env

    def create_topics(self) -> None:
        broker.ensure_topics(self.bootstrap, {self.events: self.partitions,
                                              self.recommendations: self.partitions, self.dlq: 1})


class Worker:
    def __init__(self, pipeline: Pipeline, name: str = "w1", **env: str) -> None:
        self.pipeline = pipeline
        self.name = name
        self.port = free_port()
        self.log_path = pipeline.root / f"{name}.log"
        self.env = pipeline.env(name, STREAMREC_WEB_PORT=str(self.port), **env)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: float = 90) -> "Worker":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_app", "worker"], cwd=ROOT, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"worker not ready in {wait}s:\n{self.log_tail()}")

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@pytest.fixture
def pipeline(kafka, tmp_path) -> Pipeline:
    p = Pipeline(kafka, tmp_path)
    p.create_topics()
    return p


@pytest.fixture
def workers(pipeline) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)


def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 60) -> list:
    """Read records of ``topic`` from the start until ``expect`` arrived (or the timeout)."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest")
    parts = c.partitions_for_topic(topic) or set()
    c.assign([TopicPartition(topic, p) for p in parts])
    c.seek_to_beginning()
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        # linger briefly: anything beyond `expect` is a bug the caller should see
        end = time.monotonic() + 2
        while time.monotonic() < end:
            for recs in c.poll(timeout_ms=300).values():
                out.extend(recs)
    finally:
        c.close()
    return out


def event(i: int, user: str, item: str, typ: str = "click", ts: float | None = None) -> dict:
    return {"event_id": f"e-{i}", "user_id": user, "item_id": item, "type": typ,
            "ts": ts if ts is not None else 1_700_000_000.0 + i}


def send_events(bootstrap: str, topic: str, events: list[dict]) -> None:
    p = producer(bootstrap)
    for ev in events:
        p.send(topic, key=ev["user_id"].encode(), value=orjson.dumps(ev))
    p.flush()
    p.close()
