"""The local Kafka broker on a real JVM: start, reuse, both Python clients, clear errors, crash, stop."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_app.broker import BrokerError, down, ensure_jars, status, up

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
CACHE = Path.home() / ".cache" / "streamrec" / "kafka"
TOPICS = {"events": 3, "recommendations": 2}


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_pair(start: int = 39192) -> int:
    """A port p such that p and p + 1 (the controller) are both free."""
    for port in range(start, start + 200, 2):
        if _free(port) and _free(port + 1):
            return port
    raise RuntimeError(f"no free port pair near {start}")


def _exited(pid: int) -> bool:
    """True once ``pid`` is gone or only a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    data_dir = tmp_path_factory.mktemp("kafka")
    port = _free_pair()
    try:
        yield port, data_dir
    finally:
        down(data_dir, timeout=15)


def test_up_starts_broker_with_topics(broker: tuple[int, Path]) -> None:
    port, data_dir = broker
    info = up(HOST, port, data_dir, CACHE, TOPICS, timeout=90)
    assert info["running"] is True
    assert info["bootstrap"] == f"{HOST}:{port}"
    assert info["topics"] == TOPICS
    assert isinstance(info["pid"], int)
    assert (data_dir / "logs" / "server.log").stat().st_size > 0


def test_up_again_is_harmless(broker: tuple[int, Path]) -> None:
    port, data_dir = broker
    before = status(HOST, port, data_dir)
    again = up(HOST, port, data_dir, CACHE, {**TOPICS, "extra": 1}, timeout=30)
    assert again["pid"] == before["pid"]
    assert again["topics"] == {**TOPICS, "extra": 1}


def test_changed_partition_count_is_refused(broker: tuple[int, Path]) -> None:
    port, data_dir = broker
    with pytest.raises(BrokerError, match="exists with 3 partitions but 5"):
        up(HOST, port, data_dir, CACHE, {"events": 5}, timeout=30)


def test_kafka_python_roundtrip(broker: tuple[int, Path]) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    port, _ = broker
    bootstrap = f"{HOST}:{port}"
    keys = [f"u{i}".encode() for i in range(20)]
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for key in keys:
            producer.send("events", key=key, value=b"kp-" + key)
        producer.flush(timeout=20)
    finally:
        producer.close()
    consumer = KafkaConsumer("events", bootstrap_servers=bootstrap, group_id=f"kp-{uuid.uuid4().hex}",
                             auto_offset_reset="earliest", consumer_timeout_ms=15000)
    got: dict[bytes, bytes] = {}
    partitions: set[int] = set()
    try:
        for msg in consumer:
            got[msg.key] = msg.value
            partitions.add(msg.partition)
            if len(got) == len(keys):
                break
    finally:
        consumer.close()
    assert got == {k: b"kp-" + k for k in keys}
    assert len(partitions) > 1  # keys spread over the 3 partitions


async def test_aiokafka_roundtrip(broker: tuple[int, Path]) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    port, _ = broker
    bootstrap = f"{HOST}:{port}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait("recommendations", key=f"a{i}".encode(), value=b"ai-%d" % i)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer("recommendations", bootstrap_servers=bootstrap,
                                group_id=f"ai-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    await consumer.start()
    values: set[bytes] = set()
    try:
        deadline = time.monotonic() + 20
        while len(values) < 10 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            values.update(m.value for msgs in batch.values() for m in msgs)
    finally:
        await consumer.stop()
    assert values == {b"ai-%d" % i for i in range(10)}


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    port = _free_pair(39392)
    with socket.socket() as squatter:
        squatter.bind((HOST, port))
        squatter.listen()
        with pytest.raises(BrokerError) as err:
            up(HOST, port, tmp_path / "other", CACHE, TOPICS, timeout=10)
    text = str(err.value)
    assert f"port {HOST}:{port}" in text and "already in use" in text and "STREAMREC_BROKER" in text
    assert "\n" not in text
    assert not (tmp_path / "other" / "broker.pid").exists()


def test_up_recovers_after_kill_9(broker: tuple[int, Path]) -> None:
    port, data_dir = broker
    old = status(HOST, port, data_dir)["pid"]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while status(HOST, port, data_dir)["running"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status(HOST, port, data_dir)["running"] is False
    assert (data_dir / "broker.pid").exists()  # stale: the crash left it behind
    info = up(HOST, port, data_dir, CACHE, TOPICS, timeout=90)
    assert info["running"] is True and info["pid"] != old
    assert info["topics"]["events"] == 3  # data survived the crash


def test_down_stops_broker(broker: tuple[int, Path]) -> None:
    port, data_dir = broker
    pid = status(HOST, port, data_dir)["pid"]
    assert down(data_dir) is True
    after = status(HOST, port, data_dir)
    assert after["running"] is False and after["reachable"] is False and after["pid"] is None
    assert _exited(pid)
    assert down(data_dir) is False  # idempotent


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no mvn to be found
    with pytest.raises(BrokerError, match=r"Maven \('mvn'\) is not on PATH"):
        ensure_jars(tmp_path / "cache")
    with pytest.raises(BrokerError, match="could not run Maven"):
        ensure_jars(tmp_path / "cache", mvn=str(tmp_path / "no-such-mvn"))
