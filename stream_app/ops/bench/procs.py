"""Processes and fixtures of a benchmark run: isolated topics, worker processes, the ceiling
process, and the small deep models the workers serve.

Every run gets its own topic names and consumer group, so a benchmark shares a broker with
anything else without seeing its records.

>>> names = Names("abc", "50k")
>>> names.events, names.app_id, names.changelog
('bench-abc-50k-events', 'bench-abc-50k', 'bench-abc-50k-user_state-changelog')
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream_app.kafka import KafkaTarget, as_connection, kafka_admin
from stream_app.ops.testbed import ROOT, TopicNames, WorkerProc, peak_rss, worker_env
from stream_app.settings import Settings, env_with_connection

if TYPE_CHECKING:
    from models.deep.train import TrainResult

__all__ = ["ROOT", "BenchGroup", "BenchWorker", "Names", "delete_topics", "spawn_passthrough", "train_model"]


@dataclass(frozen=True)
class Names(TopicNames):
    """Topics of catalogue ``label`` in benchmark run ``run``, plus the ceiling's passthrough sink."""

    run: str
    label: str

    @property
    def prefix(self) -> str:
        return f"bench-{self.run}-{self.label}"

    passthrough = property(lambda self: f"{self.prefix}-passthrough", doc="Sink topic of the ceiling process.")

    def topics(self, partitions: int) -> dict[str, int]:
        return {**super().topics(partitions), self.passthrough: partitions}


@contextmanager
def local_broker(settings: Settings, log: Callable[[str], None]) -> Iterator[None]:
    """A broker at ``settings.broker`` for the block: the one that answers there, or the local one
    started here when none does (and stopped again at the end)."""
    from stream_app import broker
    from stream_app.broker.topics import probe

    if probe(settings.kafka_connection(), 3.0) is not None:
        yield
        return
    host, port = settings.broker_host_port
    log(f"no broker at {settings.bootstrap}; starting the local one")
    broker.up(host, port, settings.kafka_data_dir, settings.kafka_cache_dir, {}, timeout=180)
    try:
        yield
    finally:
        broker.down(settings.kafka_data_dir)


def delete_topics(kafka: KafkaTarget, prefix: str) -> None:
    """Remove every topic whose name starts with ``prefix`` (best effort)."""
    try:
        admin = kafka_admin(as_connection(kafka), request_timeout_ms=10000)
        try:
            names = [t for t in admin.list_topics() if t.startswith(prefix)]
            if names:
                admin.delete_topics(names)
        finally:
            admin.close()
    except Exception:  # leftover topics are harmless; never fail a finished benchmark over them
        pass


class BenchWorker(WorkerProc):
    """A ``streamrec worker`` process on the topics of ``names``; ``env`` adds ``STREAMREC_*`` overrides.

    Each worker has its own consumer group (``<app_id>-<name>``) and data folder; the workers of a
    catalogue share its model registry.

    >>> w = BenchWorker(Settings(), Names("r", "x"), Path("/tmp/b"), "w", STREAMREC_BATCH_MAX="1")
    >>> w.env["STREAMREC_BATCH_MAX"], w.env["STREAMREC_APP_ID"]
    ('1', 'bench-r-x-w')
    """

    def __init__(self, settings: Settings, names: Names, root: Path, name: str, group: str | None = None,
                 **env: str) -> None:
        self.names = names
        self.root = root
        overrides = {"STREAMREC_APP_ID": f"{names.app_id}-{group or name}", "STREAMREC_LOG_LEVEL": "warning",
                     "STREAMREC_MODEL_POLL_S": "0.5", **env}
        super().__init__(name, worker_env(settings.kafka_connection(), names, settings.events_partitions,
                                          root / f"data-{names.label}-{name}", root / f"registry-{names.label}",
                                          **overrides),
                         root / f"worker-{names.label}-{name}.log")


class BenchGroup:
    """``n`` benchmark workers in one consumer group (``<app_id>-<name>``), started together.

    >>> g = BenchGroup(Settings(), Names("r", "x"), Path("/tmp/b"), "main", 2)
    >>> [w.name for w in g.workers], {w.app_id for w in g.workers}
    (['main-1', 'main-2'], {'bench-r-x-main'})
    """

    def __init__(self, settings: Settings, names: Names, root: Path, name: str, n: int = 1, **env: str) -> None:
        if n == 1:
            self.workers = [BenchWorker(settings, names, root, name, **env)]
        else:
            self.workers = [BenchWorker(settings, names, root, f"{name}-{i + 1}", group=name, **env)
                            for i in range(n)]

    def start(self) -> BenchGroup:
        """Start every worker at once (one group join, not one rebalance per worker)."""
        errors: list[BaseException] = []

        def go(w: BenchWorker) -> None:
            try:
                w.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(w,)) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.stop()
            raise errors[0]
        return self

    def stop(self) -> None:
        for w in self.workers:
            w.stop()

    def kill9(self) -> None:
        """SIGKILL every worker: for workers whose figures are taken and whose state is not needed (a
        clean stop first scores every event still buffered: the naive worker took 20 s and more)."""
        for w in self.workers:
            w.kill9()

    def wait_settled(self, partitions: int, timeout: float = 120.0) -> bool:
        """Wait until the workers own every partition between them, the same for 2 s in a row."""
        import orjson

        want = set(range(partitions))
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            owned = []
            for w in self.workers:
                status, body = w.get("/api/stats?scope=summary", timeout=2)
                owned.append(tuple(sorted(orjson.loads(body).get("partitions") or [])) if status == 200 else None)
            flat = [p for o in owned if o for p in o]
            ok = None not in owned and all(owned) and len(flat) == len(want) and set(flat) == want
            key = tuple(owned) if ok else None
            if key != last:
                last, since = key, time.monotonic()
            elif key is not None and time.monotonic() - since >= 2.0:
                return True
            time.sleep(0.25)
        return False

    @property
    def pid(self) -> int | None:
        return self.workers[0].pid

    @property
    def changelog(self) -> str:
        return self.workers[0].changelog

    def peak_rss(self) -> dict[str, Any]:
        """Peak resident memory: the sum over the workers, and each worker's."""
        found = [peak_rss(w.pid).get("peak_rss_bytes") for w in self.workers if w.pid]
        each: list[int] = [b for b in found if b]
        out: dict[str, Any] = {"peak_rss_bytes": sum(each)} if each else {}
        if len(self.workers) > 1:
            out["peak_rss_bytes_per_worker"] = each
        return out


def spawn_passthrough(kafka: KafkaTarget, source: str, sink: str, group: str,
                      expect: int) -> subprocess.Popen[bytes]:
    """Start the ceiling process; it reaches Kafka as ``kafka`` does (``STREAMREC_*`` Kafka variables)."""
    cmd = [sys.executable, "-m", "stream_app.ops.bench.passthrough", "--source", source,
           "--sink", sink, "--group", group, "--expect", str(expect)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_with_connection(as_connection(kafka)))


def train_model(events: list[dict[str, Any]], n_items: int, seed: int, quick: bool) -> TrainResult:
    """A small deep model over the whole catalogue (one epoch), as a ``TrainResult``.

    The training log is the benchmark's events plus one pass over the catalogue (sessions of 50
    consecutive item ids, before the first event), so every item has an embedding and the worker
    scores the full catalogue, as it would in production.
    """
    from models.base import Interaction
    from models.deep.train import TrainConfig, train

    t0 = float(events[0]["ts"]) - 86400.0
    sweep = [Interaction(f"catalogue-{k // 50}", f"i-{k}", "view", t0 + k * 1e-3) for k in range(n_items)]
    log = sweep + [Interaction(e["user_id"], e["item_id"], e["type"], float(e["ts"])) for e in events]
    cfg = TrainConfig(dim=32 if quick else 64, layers=1 if quick else 2, heads=1 if quick else 2,
                      max_len=50, epochs=1, batch_size=256, negatives=256, max_eval_users=500, seed=seed)
    return train(log, cfg, device="cpu", progress=False)
