"""Integration fixtures: one real Kafka broker for the session, workers as real processes.

Each test gets its own topic names and consumer group (settings ``STREAMREC_*_TOPIC`` and
``STREAMREC_APP_ID``), so tests share the broker without seeing each other's records.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_app import broker
from stream_app.ops.testbed import IsolatedPipeline, WorkerProc

KAFKA_PORT = int(os.environ.get("STREAMREC_TEST_KAFKA_PORT", "39092"))
CACHE = Path.home() / ".cache" / "streamrec" / "kafka"
BROKER_DATA: dict[str, Path] = {}
"""The session broker's data folder, by bootstrap (what ``streamrec kafka`` and the demo look up)."""


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
    BROKER_DATA[f"127.0.0.1:{port}"] = data
    yield f"127.0.0.1:{port}"
    broker.down(data)


class Worker(WorkerProc):
    """A worker of ``pipeline``: data in ``<root>/<name>``, log in ``<root>/<name>.log``."""

    def __init__(self, pipeline: IsolatedPipeline, name: str = "w1", **env: str) -> None:
        self.pipeline = pipeline
        super().__init__(name, pipeline.env(name, **env), pipeline.root / f"{name}.log")


@pytest.fixture
def pipeline(kafka, tmp_path) -> IsolatedPipeline:
    p = IsolatedPipeline(kafka, tmp_path)
    p.create_topics()
    return p


@pytest.fixture
def workers(pipeline) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()
