"""Processes and fixtures of a benchmark run: isolated topics, worker processes, the ceiling
process, and the small deep models the workers serve.

Every run gets its own topic names and consumer group, so a benchmark shares a broker with
anything else without seeing its records.

>>> names = Names("abc", "50k")
>>> names.events, names.app_id, names.changelog
('bench-abc-50k-events', 'bench-abc-50k', 'bench-abc-50k-user_state-changelog')
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stream_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Names:
    run: str
    label: str

    @property
    def prefix(self) -> str:
        return f"bench-{self.run}-{self.label}"

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
    def passthrough(self) -> str:
        return f"{self.prefix}-passthrough"

    @property
    def app_id(self) -> str:
        return self.prefix

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-user_state-changelog"

    def topics(self, partitions: int) -> dict[str, int]:
        return {self.events: partitions, self.recommendations: partitions, self.dlq: 1,
                self.passthrough: partitions}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Remove every topic whose name starts with ``prefix`` (best effort)."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        try:
            names = [t for t in admin.list_topics() if t.startswith(prefix)]
            if names:
                admin.delete_topics(names)
        finally:
            admin.close()
    except Exception:  # leftover topics are harmless; never fail a finished benchmark over them
        pass


class BenchWorker:
    """A ``streamrec worker`` process on the topics of ``names``; ``env`` adds ``STREAMREC_*`` overrides.

    >>> w = BenchWorker(Settings(), Names("r", "x"), Path("/tmp/b"), "w", STREAMREC_BATCH_MAX="1")
    >>> w.env["STREAMREC_BATCH_MAX"], w.env["STREAMREC_APP_ID"]
    ('1', 'bench-r-x-w')
    """

    def __init__(self, settings: Settings, names: Names, root: Path, name: str, **env: str) -> None:
        self.names = names
        self.name = name
        self.port = free_port()
        self.root = root
        self.log_path = root / f"worker-{names.label}-{name}.log"
        self.env = dict(os.environ)
        self.env.update(
            STREAMREC_BROKER=settings.broker,
            STREAMREC_APP_ID=f"{names.app_id}-{name}",
            STREAMREC_EVENTS_TOPIC=names.events,
            STREAMREC_RECOMMENDATIONS_TOPIC=names.recommendations,
            STREAMREC_DLQ_TOPIC=names.dlq,
            STREAMREC_EVENTS_PARTITIONS=str(settings.events_partitions),
            STREAMREC_DATA_DIR=str(root / f"data-{names.label}-{name}"),
            STREAMREC_REGISTRY_DIR=str(root / f"registry-{names.label}"),
            STREAMREC_WEB_PORT=str(self.port),
            STREAMREC_WEB_HOST="127.0.0.1",
            STREAMREC_LOG_LEVEL="warning",
            STREAMREC_MODEL_POLL_S="0.5",
        )
        self.env.pop("STREAMREC_AUTH_TOKEN", None)
        self.env.update(env)
        self.proc: subprocess.Popen | None = None

    @property
    def app_id(self) -> str:
        return self.env["STREAMREC_APP_ID"]

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-user_state-changelog"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, wait: float = 120.0) -> "BenchWorker":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_app", "worker"], cwd=ROOT, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"benchmark worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"benchmark worker not ready within {wait:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def spawn_passthrough(bootstrap: str, source: str, sink: str, group: str, expect: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stream_app.bench.passthrough", "--bootstrap", bootstrap, "--source", source,
           "--sink", sink, "--group", group, "--expect", str(expect)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def train_model(events: list[dict], n_items: int, seed: int, quick: bool):
    """A small deep model over the whole catalogue (one epoch), as a ``TrainResult``.

    The training log is the benchmark's events plus one pass over the catalogue (sessions of 50
    consecutive item ids, before the first event), so every item has an embedding and the worker
    scores the full catalogue, as it would in production.
    """
    from models.base import Interaction
    from models.train import TrainConfig, train

    t0 = float(events[0]["ts"]) - 86400.0
    sweep = [Interaction(f"catalogue-{k // 50}", f"i-{k}", "view", t0 + k * 1e-3) for k in range(n_items)]
    log = sweep + [Interaction(e["user_id"], e["item_id"], e["type"], float(e["ts"])) for e in events]
    cfg = TrainConfig(dim=32 if quick else 64, layers=1 if quick else 2, heads=1 if quick else 2,
                      max_len=50, epochs=1, batch_size=256, negatives=256, max_eval_users=500, seed=seed)
    return train(log, cfg, device="cpu", progress=False)
