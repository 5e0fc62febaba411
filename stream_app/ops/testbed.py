"""Isolated pipelines on a real broker and ``streamrec worker`` processes to run on them.

Shared by the integration tests, the benchmark and the reliability suite. A pipeline gets its own
topic names, consumer group and folders, so any number of them share one broker without seeing
each other's records. Nothing here reads settings: a worker is configured only through the
``STREAMREC_*`` environment this module builds for its subprocess.

>>> p = IsolatedPipeline("127.0.0.1:9092", Path("/tmp/p"), name="abc")
>>> p.events, p.dlq, p.app_id, p.changelog
('it-abc-events', 'it-abc-dlq', 'it-abc', 'it-abc-user_state-changelog')
>>> env = p.env("w2", STREAMREC_BATCH_MAX="1")
>>> env["STREAMREC_DATA_DIR"], env["STREAMREC_BROKER"], env["STREAMREC_BATCH_MAX"]
('/tmp/p/w2', 'kafka://127.0.0.1:9092', '1')
>>> event(3, "u-1", "i-9")["event_id"]
'e-3'
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import orjson

from stream_app.kafka import KafkaConnection, KafkaTarget, as_connection, kafka_consumer, kafka_producer
from stream_app.ops.children import tie

if TYPE_CHECKING:
    from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[2]
# Settings for workers under test: verbose enough to debug from the log, frequent model checkpoints.
TEST_SETTINGS = {"STREAMREC_LOG_LEVEL": "info", "STREAMREC_CHECKPOINT_INTERVAL_S": "2"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def peak_rss(pid: int) -> dict[str, Any]:
    """Peak and current resident memory of a live process, from ``/proc/<pid>/status`` (bytes).

    >>> sorted(peak_rss(os.getpid()))
    ['peak_rss_bytes', 'rss_bytes']
    """
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    name, kb = line.split()[:2]
                    out["peak_rss_bytes" if name == "VmHWM:" else "rss_bytes"] = int(kb) * 1024
    except OSError:
        pass
    return out


class TopicNames:
    """Topic names and consumer group derived from ``self.prefix`` (set by the subclass).

    >>> class N(TopicNames):
    ...     prefix = "x-1"
    >>> N().recommendations, N().topics(2)
    ('x-1-recommendations', {'x-1-events': 2, 'x-1-recommendations': 2, 'x-1-dlq': 1, 'x-1-shared': 2, 'x-1-items': 2})
    """

    @property
    def prefix(self) -> str:
        """What every name starts with (the subclass says)."""
        raise NotImplementedError

    @property
    def events(self) -> str:
        return f"{self.prefix}-events"

    @property
    def recommendations(self) -> str:
        return f"{self.prefix}-recommendations"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}-dlq"

    @property
    def shared(self) -> str:
        return f"{self.prefix}-shared"

    @property
    def items(self) -> str:
        return f"{self.prefix}-items"

    @property
    def app_id(self) -> str:
        return self.prefix

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-user_state-changelog"

    def topics(self, partitions: int) -> dict[str, int]:
        """``{topic: partitions}`` of every topic the pipeline uses."""
        return {self.events: partitions, self.recommendations: partitions, self.dlq: 1, self.shared: partitions,
                self.items: partitions}

    def create(self, kafka: KafkaTarget, partitions: int) -> None:
        from stream_app import broker

        broker.ensure_topics(kafka, self.topics(partitions), configs={self.items: {"cleanup.policy": "compact"}})


def worker_env(broker_url: str | KafkaConnection, names: TopicNames, partitions: int, data_dir: Path, registry_dir: Path,
               **extra: str) -> dict[str, str]:
    """This process's environment with a worker pointed at ``names`` (``extra`` overrides last).

    ``broker_url`` is a ``kafka://`` URL (the Kafka security variables are inherited), or a
    connection: then every ``STREAMREC_*`` Kafka variable is set from it (TLS / SASL included).
    An inherited ``STREAMREC_AUTH_TOKEN`` is dropped: callers that want one pass it in ``extra``.
    """
    if isinstance(broker_url, KafkaConnection):
        from stream_app.settings import env_with_connection

        env = env_with_connection(broker_url)
    else:
        env = dict(os.environ)
        env["STREAMREC_BROKER"] = broker_url
    env.pop("STREAMREC_AUTH_TOKEN", None)
    env.update(
        STREAMREC_APP_ID=names.app_id,
        STREAMREC_EVENTS_TOPIC=names.events,
        STREAMREC_RECOMMENDATIONS_TOPIC=names.recommendations,
        STREAMREC_DLQ_TOPIC=names.dlq,
        STREAMREC_SHARED_TOPIC=names.shared,
        STREAMREC_ITEMS_TOPIC=names.items,
        STREAMREC_EVENTS_PARTITIONS=str(partitions),
        STREAMREC_DATA_DIR=str(data_dir),
        STREAMREC_REGISTRY_DIR=str(registry_dir),
    )
    env.update(extra)
    return env


@dataclass
class IsolatedPipeline(TopicNames):
    """One isolated pipeline on the broker at ``bootstrap``; workers keep their data under ``root``.

    ``bootstrap`` is a ``host:port`` string (plaintext) or a connection (TLS / SASL passed to the workers too).
    """

    bootstrap: KafkaTarget
    root: Path
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    partitions: int = 4
    tag: str = "it"

    @property
    def prefix(self) -> str:
        return f"{self.tag}-{self.name}"

    def env(self, worker: str = "w1", **extra: str) -> dict[str, str]:
        """Environment of worker ``worker``: its own data folder, the pipeline's shared registry."""
        broker = self.bootstrap if isinstance(self.bootstrap, KafkaConnection) else f"kafka://{self.bootstrap}"
        return worker_env(broker, self, self.partitions, self.root / worker,
                          self.root / "registry", **{**TEST_SETTINGS, **extra})

    def create_topics(self) -> None:
        self.create(self.bootstrap, self.partitions)


class WorkerProc:
    """A ``streamrec worker`` subprocess run with ``env``; restartable on the same data folder.

    It listens on a fresh port on 127.0.0.1, logs to ``log_path`` (appending, one marker line
    per start) and runs in its own process group, so ``kill9`` and ``stop`` reach all of it.

    >>> w = WorkerProc("w", {"STREAMREC_APP_ID": "g"}, Path("/tmp/w.log"))
    >>> w.alive, w.app_id, w.env["STREAMREC_WEB_PORT"] == str(w.port)
    (False, 'g', True)
    """

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = Path(log_path)
        self.env = dict(env)
        self.env.update(STREAMREC_WEB_HOST="127.0.0.1", STREAMREC_WEB_PORT=str(self.port))
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def app_id(self) -> str:
        return self.env["STREAMREC_APP_ID"]

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-user_state-changelog"

    def start(self, wait: float = 120.0) -> Self:
        """Start the process and wait until ``/health`` answers (stopped and an error if it does not)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"==== start {self.starts + 1} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "stream_app", "worker"], cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=tie())
        self.starts += 1
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.health() is not None:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"worker {self.name} not ready within {wait:.0f}s:\n{self.log_tail()}")

    def health(self) -> dict[str, Any] | None:
        """The ``/health`` document, or None while the worker does not answer 200."""
        status, body = self.get("/health", timeout=1)
        return orjson.loads(body) if status == 200 else None

    def get(self, path: str, headers: Mapping[str, str] | None = None, timeout: float = 15) -> tuple[int, bytes]:
        """GET ``path``; redirects to the worker that owns a user are followed. (0, b"") if unreachable."""
        req = urllib.request.Request(self.url + path, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (OSError, ValueError):
            return 0, b""

    def kill9(self) -> float:
        """SIGKILL the worker (no shutdown of any kind); return the wall-clock time of the kill."""
        at = time.time()
        if self.alive and self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return at

    def stop(self) -> None:
        """SIGTERM and wait for a clean shutdown (SIGKILL after 30 s)."""
        if self.alive and self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def rss_mb(self) -> float | None:
        """Resident memory of the worker process, MiB (None when it is not running)."""
        rss = peak_rss(self.proc.pid).get("rss_bytes") if self.alive and self.proc is not None else None
        return None if rss is None else rss / (1024.0 * 1024.0)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:]) or "(no log)"

    def log_lines(self, levels: tuple[str, ...] = ("WARNING", "ERROR")) -> list[str]:
        """The log's lines at any of ``levels`` (Faust writes the level as ``[LEVEL]``)."""
        tags = tuple(f"[{lvl}]" for lvl in levels)
        return [line for line in self.log_text().splitlines() if any(t in line for t in tags)]


def producer(kafka: KafkaTarget, **kw: Any) -> KafkaProducer:
    """A ``KafkaProducer`` that waits for every replica (``acks=all``); ``kw`` adds options."""
    return kafka_producer(as_connection(kafka), **{"acks": "all", "linger_ms": 5, **kw})


def produce(kafka: KafkaTarget, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Send raw ``(key, value)`` records and wait until all are acknowledged; return how many."""
    p = producer(kafka, max_request_size=4 * 1024 * 1024)
    futures = [p.send(topic, key=key, value=value) for key, value in records]
    p.flush(120)
    for f in futures:
        f.get(timeout=60)
    p.close(10)
    return len(futures)


def event(i: int, user: str, item: str, typ: str = "click", ts: float | None = None) -> dict[str, Any]:
    """Event number ``i`` as a JSON-ready dict (``ts`` defaults to a fixed epoch plus ``i`` seconds)."""
    return {"event_id": f"e-{i}", "user_id": user, "item_id": item, "type": typ,
            "ts": ts if ts is not None else 1_700_000_000.0 + i}


def send_events(kafka: KafkaTarget, topic: str, events: Iterable[dict[str, Any]]) -> int:
    """Send event dicts as JSON keyed by user id; wait for every acknowledgement."""
    return produce(kafka, topic, ((ev["user_id"].encode(), orjson.dumps(ev)) for ev in events))


def read_records(kafka: KafkaTarget, topic: str, expect: int, timeout: float = 60.0, linger: float = 2.0) -> list[Any]:
    """Every record of ``topic`` from the start: until ``expect`` arrived (or ``timeout``), then ``linger`` more.

    The linger is there so that records beyond ``expect`` (duplicates, say) show up to the caller.
    """
    from kafka import TopicPartition

    c = kafka_consumer(as_connection(kafka), group_id=None, enable_auto_commit=False,
                       auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)
    out: list[Any] = []
    try:
        parts = c.partitions_for_topic(topic) or set()
        c.assign([TopicPartition(topic, p) for p in parts])
        c.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        end = time.monotonic() + linger
        while time.monotonic() < end:
            for recs in c.poll(timeout_ms=300).values():
                out.extend(recs)
    finally:
        c.close()
    return out
