"""A local Apache Kafka broker (KRaft mode, loopback only) that streamrec runs itself: one node,
or a cluster of three (``brokers=3``, see :mod:`.cluster`).

The jars come from Maven Central through ``mvn`` (cached), the broker runs on the machine's Java
17 as a detached process whose pid, config and logs live in ``data_dir`` (a cluster's nodes in
``data_dir/node-<id>``). Everything here takes its parameters explicitly; settings are read by
the caller.

>>> from pathlib import Path
>>> status("127.0.0.1", 1, Path("/nonexistent/streamrec-doc"))["running"]
False

Typical use (needs Java and Maven, so not run as a doctest)::

    info = up("127.0.0.1", 9092, Path("var/kafka"), Path.home() / ".cache/streamrec/kafka",
              {"events": 4, "recommendations": 4})
    info["bootstrap"]   # '127.0.0.1:9092'
    down(Path("var/kafka"))
    up("127.0.0.1", 9092, Path("var/kafka"), cache, {"events": 4}, brokers=3)["bootstrap"]
    # '127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096'
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import cluster, process
from .errors import BrokerError
from .jars import KAFKA_VERSION, ensure_jars, file_lock
from .topics import describe_partitions, ensure_topics, probe, resolve_replication, validate_topics

__all__ = ["KAFKA_VERSION", "BrokerError", "describe_partitions", "down", "ensure_jars", "ensure_topics",
           "kill_node", "resolve_replication", "status", "up"]


def _loopback(host: str) -> str:
    """The numeric loopback address for ``host``; anything else is refused (no network exposure)."""
    name = "127.0.0.1" if host == "localhost" else host
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        raise BrokerError(f"broker host {host!r} is not an IP address; the local broker binds "
                          "loopback only (use 127.0.0.1)") from None
    if not addr.is_loopback:
        raise BrokerError(f"broker host {host} is not a loopback address; the local broker binds "
                          "loopback only (use 127.0.0.1), use Docker compose for anything else")
    return str(addr)


def _accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_ready(info: process.PidInfo, data_dir: Path, deadline: float, timeout: float) -> None:
    """Block until the broker answers a metadata request, or raise with the log's last error."""
    bootstrap = f"{info.host}:{info.port}"
    while True:
        if not process.is_our_broker(info.pid, data_dir):
            process.clear_pid(data_dir)
            raise BrokerError(f"the Kafka broker exited during start-up: {process.log_problem(data_dir)}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrokerError(f"the Kafka broker (pid {info.pid}) did not answer on {bootstrap} within "
                              f"{timeout:.0f} s: {process.log_problem(data_dir)}")
        if _accepts(info.host, info.port) and probe(bootstrap, min(3.0, max(0.5, left))) is not None:
            return
        time.sleep(0.2)


def up(host: str, port: int, data_dir: Path, cache_dir: Path, topics: Mapping[str, int],
       timeout: float = 90, *, controller_port: int | None = None, heap_mb: int = 512,
       configs: Mapping[str, Mapping[str, str]] | None = None, brokers: int | None = None,
       replication: int | None = None, min_insync: int | None = None) -> dict[str, Any]:
    """Start the broker if it is not running, create missing topics, and return :func:`status`.

    Idempotent: when this data folder's broker is already up, only the topics are ensured. A stale
    pid file (broker killed) is ignored. ``timeout`` covers start-up and topic creation, not the
    one-time jar download. The controller listens on ``controller_port`` (default ``port + 1``).

    ``brokers=3`` runs a three-node cluster on ``port``, ``port + 2`` and ``port + 4`` (controllers
    on the ports after them); a node that is down is started again, the others are left running.
    None keeps what the data folder last ran (one node when new). Topics are created with
    ``replication`` replicas and ``min_insync`` of them in sync (None: auto, see
    :func:`resolve_replication`).
    """
    host = _loopback(host)
    cport = port + 1 if controller_port is None else controller_port
    wanted = validate_topics(topics)
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    laid_out = cluster.read_layout(data_dir)
    size = cluster.check_size(brokers if brokers is not None else (laid_out or {}).get("brokers", 1))
    resolve_replication(replication, min_insync, size)  # a bad value fails now, not after the start-up
    if size > 1:
        if controller_port is not None:
            raise BrokerError("a cluster's controllers listen on the port after each broker's; "
                              "controller_port applies to a single node only")
        return _up_cluster(host, port, data_dir, cache_dir, wanted, timeout, size, heap_mb, configs,
                           replication, min_insync)
    with file_lock(process.paths(data_dir)["lock"]):
        if cluster.any_running(data_dir):
            raise BrokerError(f"a {len(cluster.nodes_of(data_dir))}-broker cluster runs from {data_dir}; run "
                              "`streamrec kafka down` first, or `streamrec kafka up --brokers 3`")
        cluster.forget_layout(data_dir)
        info = process.read_pid(data_dir)
        if info is not None and process.is_our_broker(info.pid, data_dir):
            if (info.host, info.port, info.controller_port) != (host, port, cport):
                raise BrokerError(
                    f"the broker for {data_dir} already runs on {info.host}:{info.port} (pid {info.pid}); "
                    f"run `streamrec kafka down` before starting it on {host}:{port}")
            _wait_ready(info, data_dir, time.monotonic() + timeout, timeout)
        else:
            process.clear_pid(data_dir)
            process.check_port_free(host, port, "Kafka broker")
            process.check_port_free(host, cport, "Kafka controller")
            libs = ensure_jars(cache_dir)
            started = time.monotonic()
            process.write_config(host, port, cport, data_dir)
            process.format_storage(libs, data_dir)
            info = process.start(libs, host, port, cport, data_dir, heap_mb=heap_mb)
            try:
                _wait_ready(info, data_dir, started + timeout, timeout)
            except BaseException:
                if process.is_our_broker(info.pid, data_dir):
                    process.stop(info.pid, data_dir, timeout=10)
                process.clear_pid(data_dir)
                raise
        ensure_topics(f"{host}:{port}", wanted, timeout=max(10.0, timeout), configs=configs,
                      replication=replication, min_insync=min_insync)
    return status(host, port, data_dir)


def _up_cluster(host: str, port: int, data_dir: Path, cache_dir: Path, wanted: dict[str, int], timeout: float,
                size: int, heap_mb: int, configs: Mapping[str, Mapping[str, str]] | None,
                replication: int | None, min_insync: int | None) -> dict[str, Any]:
    with file_lock(process.paths(data_dir)["lock"]):
        info = process.read_pid(data_dir)
        if info is not None and process.is_our_broker(info.pid, data_dir):
            raise BrokerError(f"a single-node broker runs from {data_dir} on {info.host}:{info.port} (pid {info.pid}); "
                              "run `streamrec kafka down` first")
        nodes = cluster.start(host, port, data_dir, cache_dir, size, timeout, heap_mb=heap_mb)
        # resolved against the cluster's size, not against the brokers registered so far: a topic
        # created while one node is still joining would otherwise get fewer replicas for good
        rf, isr = resolve_replication(replication, min_insync, size)
        ensure_topics(cluster.bootstrap(nodes), wanted, timeout=max(10.0, timeout), configs=configs,
                      replication=rf, min_insync=isr)
        cluster.wait_known(nodes, wanted, timeout=max(10.0, timeout))
    return status(host, port, data_dir)


def kill_node(data_dir: Path, node_id: int) -> float:
    """SIGKILL node ``node_id`` of the cluster run from ``data_dir`` (failover tests); the time of the kill."""
    return cluster.kill9(Path(data_dir).expanduser().resolve(), node_id)


def down(data_dir: Path, timeout: float = 30) -> bool:
    """Stop this data folder's broker, or every node of its cluster (SIGTERM, then SIGKILL after
    ``timeout``); True if one was running."""
    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        return False
    with file_lock(process.paths(data_dir)["lock"]):
        stopped = cluster.stop(cluster.nodes_of(data_dir), timeout=timeout) > 0
        info = process.read_pid(data_dir)
        if info is None or not process.is_our_broker(info.pid, data_dir):
            process.clear_pid(data_dir)
            return stopped
        process.stop(info.pid, data_dir, timeout=timeout)
        process.clear_pid(data_dir)
        return True


def status(host: str, port: int, data_dir: Path) -> dict[str, Any]:
    """Report on the broker: ``{"running", "pid", "bootstrap", "reachable", "topics", "data_dir", "log"}``.

    ``running`` is true when this data folder's broker process is alive and answers on
    ``host:port``; ``reachable`` is true when any Kafka broker answers there; ``topics`` maps the
    non-internal topic names to partition counts (empty when nothing answers).

    For a cluster (the data folder's last ``up`` had ``brokers=3``) the addresses come from its
    layout: ``bootstrap`` lists every node, ``running`` means all of them serve, and ``brokers`` and
    ``nodes`` (``{"node_id", "pid", "bootstrap", "running", "serving", "log"}`` each) are added.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    if cluster.nodes_of(data_dir):
        return cluster.status(data_dir)
    bootstrap = f"{host}:{port}"
    info = process.read_pid(data_dir)
    alive = info is not None and process.is_our_broker(info.pid, data_dir)
    found = probe(bootstrap, 2.0) if _accepts(host, port) else None
    return {
        "running": bool(alive and found is not None),
        "pid": info.pid if alive and info else None,
        "bootstrap": bootstrap,
        "reachable": found is not None,
        "topics": dict(sorted((found or {}).items())),
        "data_dir": str(data_dir),
        "log": str(process.paths(data_dir)["log"]),
    }
