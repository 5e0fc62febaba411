"""A local KRaft cluster of several nodes on loopback, each node broker and controller at once.

Node ``k`` (from 1) of a cluster whose first client port is ``port`` listens for clients on
``port + 2(k - 1)`` and for the controller quorum on the port after it; its files are those of a
single node (see :mod:`.process`) in ``data_dir/node-k``. ``data_dir/cluster.json`` records the
layout (nodes, host, first port, cluster id), so ``down`` and ``status`` find every node, and a
node that died is started again by the next ``up`` while the others keep running.

The functions here do the work of :func:`stream_app.broker.up`, :func:`~stream_app.broker.down`
and :func:`~stream_app.broker.status`, which hold the data folder's lock around them.

>>> [(n.node_id, n.port, n.controller_port, n.data_dir.name) for n in layout("127.0.0.1", 9092, Path("/c"), 3)]
[(1, 9092, 9093, 'node-1'), (2, 9094, 9095, 'node-2'), (3, 9096, 9097, 'node-3')]
>>> bootstrap(layout("127.0.0.1", 9092, Path("/c"), 3))
'127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096'
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BrokerError
from .jars import ensure_jars
from .process import (
    PidInfo,
    check_port_free,
    clear_pid,
    format_storage,
    is_our_broker,
    log_problem,
    new_cluster_id,
    paths,
    read_pid,
    stored_cluster_id,
    write_config,
)
from .process import (
    start as start_node,
)
from .topics import cluster_brokers, probe

SIZES = (1, 3)
"""Cluster sizes ``streamrec kafka up --brokers`` accepts: a quorum of two controllers stops as soon as
either is down (a majority of 2 is 2), so two brokers would be no more available than one."""
LAYOUT_FILE = "cluster.json"


def check_size(brokers: int) -> int:
    """``brokers`` if it is a cluster size streamrec runs, else a one-line :class:`BrokerError`.

    >>> check_size(3)
    3
    >>> check_size(2)
    Traceback (most recent call last):
    ...
    stream_app.broker.errors.BrokerError: --brokers must be 1 or 3, got 2: ...
    """
    if isinstance(brokers, bool) or brokers not in SIZES:
        raise BrokerError(f"--brokers must be 1 or 3, got {brokers}: a KRaft quorum of two controllers cannot "
                          "lose either, so two brokers are no more available than one")
    return brokers


@dataclass(frozen=True)
class Node:
    """One node of a local cluster: its id, ports and data folder."""

    node_id: int
    host: str
    port: int
    controller_port: int
    data_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def layout(host: str, port: int, data_dir: Path, brokers: int) -> list[Node]:
    """The nodes of a ``brokers``-node cluster whose first client port is ``port``."""
    return [Node(k, host, port + 2 * (k - 1), port + 2 * (k - 1) + 1, Path(data_dir) / f"node-{k}")
            for k in range(1, brokers + 1)]


def bootstrap(nodes: list[Node]) -> str:
    """Every node's ``host:port``, comma separated (what clients should be given)."""
    return ",".join(n.bootstrap for n in nodes)


def read_layout(data_dir: Path) -> dict[str, Any] | None:
    """``cluster.json`` of ``data_dir`` (``{"brokers", "host", "port", "cluster_id"}``), or None."""
    try:
        found = json.loads((Path(data_dir) / LAYOUT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("brokers"), int) else None


def forget_layout(data_dir: Path) -> None:
    """Remove ``cluster.json`` (the data folder then runs a single node; the nodes' storage stays)."""
    (Path(data_dir) / LAYOUT_FILE).unlink(missing_ok=True)


def nodes_of(data_dir: Path) -> list[Node]:
    """The nodes ``cluster.json`` lists (empty when the data folder holds no cluster)."""
    found = read_layout(data_dir)
    if not found or found["brokers"] < 2:
        return []
    return layout(str(found["host"]), int(found["port"]), Path(data_dir), int(found["brokers"]))


def running(node: Node) -> PidInfo | None:
    """The node's pid file when its process is alive, else None."""
    info = read_pid(node.data_dir)
    return info if info is not None and is_our_broker(info.pid, node.data_dir) else None


def any_running(data_dir: Path) -> bool:
    """True when a node of the cluster recorded in ``data_dir`` is alive."""
    return any(running(n) is not None for n in nodes_of(data_dir))


def _cluster_id(data_dir: Path, nodes: list[Node]) -> str:
    found = read_layout(data_dir) or {}
    stored = [cid for cid in (stored_cluster_id(n.data_dir) for n in nodes) if cid]
    if len(set(stored)) > 1:
        raise BrokerError(f"the nodes under {data_dir} belong to different clusters ({', '.join(sorted(set(stored)))});"
                          f" run `streamrec kafka down` and delete {data_dir}")
    return stored[0] if stored else str(found.get("cluster_id") or new_cluster_id())


def _write_layout(data_dir: Path, nodes: list[Node], cluster_id: str) -> None:
    path = Path(data_dir) / LAYOUT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"brokers": len(nodes), "host": nodes[0].host, "port": nodes[0].port,
                               "cluster_id": cluster_id}))
    os.replace(tmp, path)


def start(host: str, port: int, data_dir: Path, cache_dir: Path, brokers: int, timeout: float,
          heap_mb: int = 512) -> list[Node]:
    """Start every node of the cluster that is not running and wait until all serve; return the nodes.

    Nodes already running are left alone (so this restarts a node that was killed). On failure
    the nodes this call started are stopped again and the error names the node and its log.
    """
    nodes = layout(host, port, data_dir, brokers)
    found = read_layout(data_dir)
    if found and (found["brokers"], found["host"], found["port"]) != (brokers, host, port) and any_running(data_dir):
        raise BrokerError(f"the {found['brokers']}-node cluster of {data_dir} already runs from "
                          f"{found['host']}:{found['port']}; run `streamrec kafka down` before starting it on "
                          f"{host}:{port}")
    dead: list[Node] = []
    for node in nodes:
        info = running(node)
        if info is None:
            dead.append(node)
        elif (info.host, info.port, info.controller_port) != (node.host, node.port, node.controller_port):
            raise BrokerError(f"node {node.node_id} of {data_dir} already runs on {info.host}:{info.port} "
                              f"(pid {info.pid}); run `streamrec kafka down` first")
    cluster_id = _cluster_id(data_dir, nodes)
    started = time.monotonic()
    if dead:
        for node in dead:
            clear_pid(node.data_dir)
            check_port_free(host, node.port, f"Kafka broker {node.node_id}")
            check_port_free(host, node.controller_port, f"Kafka controller {node.node_id}")
        libs = ensure_jars(cache_dir)
        started = time.monotonic()
        voters = {n.node_id: n.controller_port for n in nodes}
        for node in dead:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            write_config(host, node.port, node.controller_port, node.data_dir, node_id=node.node_id,
                                 voters=voters)
        with ThreadPoolExecutor(len(dead)) as pool:  # one JVM each: format them side by side
            list(pool.map(lambda n: format_storage(libs, n.data_dir, cluster_id=cluster_id), dead))
        _write_layout(data_dir, nodes, cluster_id)
        for node in dead:
            start_node(libs, host, node.port, node.controller_port, node.data_dir, heap_mb=heap_mb)
    else:
        _write_layout(data_dir, nodes, cluster_id)
    try:
        _wait_serving(nodes, started + timeout, timeout)
    except BaseException:
        stop([n for n in dead if running(n) is not None], timeout=10)
        raise
    return nodes


def _wait_serving(nodes: list[Node], deadline: float, timeout: float) -> None:
    """Until every node answers a metadata request and the cluster lists all of them as brokers."""
    waiting = list(nodes)
    while True:
        for node in list(waiting):
            if running(node) is None:
                clear_pid(node.data_dir)
                raise BrokerError(f"Kafka node {node.node_id} exited during start-up: "
                                  f"{log_problem(node.data_dir)}")
            if probe(node.bootstrap, 2.0) is not None:
                waiting.remove(node)
        if not waiting:
            ids = cluster_brokers(bootstrap(nodes), 2.0) or []
            if set(ids) >= {n.node_id for n in nodes}:
                return
        if time.monotonic() >= deadline:
            late = waiting or nodes
            raise BrokerError(f"the Kafka cluster did not serve all {len(nodes)} brokers within {timeout:.0f} s "
                              f"(node {late[0].node_id}: {log_problem(late[0].data_dir)})")
        time.sleep(0.3)


def wait_known(nodes: list[Node], topics: dict[str, int], timeout: float) -> None:
    """Until every node's metadata has ``topics`` (brokers learn of a new topic one after the other)."""
    deadline = time.monotonic() + timeout
    for node in nodes:
        while not set(topics) <= set(probe(node.bootstrap, 2.0) or ()):
            if time.monotonic() >= deadline:
                raise BrokerError(f"Kafka node {node.node_id} does not know topics {sorted(topics)} after "
                                  f"{timeout:.0f} s: {log_problem(node.data_dir)}")
            time.sleep(0.2)


def stop(nodes: list[Node], timeout: float = 30) -> int:
    """SIGTERM every running node at once, SIGKILL those still alive after ``timeout``; how many ran.

    All at once: a node shut down last, alone, would wait for a controller quorum that is gone.
    """
    alive = {n: info for n in nodes if (info := running(n)) is not None}
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        for info in alive.values():
            try:
                os.kill(info.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(running(n) is not None for n in alive):
            time.sleep(0.1)
        if all(running(n) is None for n in alive):
            break
    left = [n for n in alive if running(n) is not None]
    if left:
        pids = ", ".join(str(alive[n].pid) for n in left)
        raise BrokerError(f"Kafka node(s) {', '.join(str(n.node_id) for n in left)} (pid {pids}) did not exit "
                          "after SIGKILL; check them with `ps`")
    for n in nodes:
        clear_pid(n.data_dir)
    return len(alive)


def kill9(data_dir: Path, node_id: int) -> float:
    """SIGKILL one node of the cluster (no shutdown of any kind); the wall-clock time of the kill.

    For failover tests; the next ``up`` starts it again.
    """
    node = next((n for n in nodes_of(data_dir) if n.node_id == node_id), None)
    info = running(node) if node is not None else None
    if node is None or info is None:
        raise BrokerError(f"node {node_id} of the cluster in {data_dir} is not running")
    at = time.time()
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while running(node) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    return at


def status(data_dir: Path) -> dict[str, Any]:
    """:func:`stream_app.broker.status` of the cluster ``cluster.json`` records, with a ``nodes`` list."""
    nodes = nodes_of(data_dir)
    rows = []
    for node in nodes:
        info = running(node)
        rows.append({"node_id": node.node_id, "pid": info.pid if info else None, "bootstrap": node.bootstrap,
                     "running": info is not None, "log": str(paths(node.data_dir)["log"])})
    up = [r for r in rows if r["running"]]
    boot = bootstrap(nodes)
    found = probe(boot, 2.0) if up else None
    live = (cluster_brokers(boot, 2.0) or []) if found is not None else []
    for r in rows:
        r["serving"] = r["running"] and r["node_id"] in live
    return {
        "running": bool(rows) and len(up) == len(rows) and found is not None,
        "pid": up[0]["pid"] if up else None,
        "bootstrap": boot,
        "reachable": found is not None,
        "topics": dict(sorted((found or {}).items())),
        "data_dir": str(data_dir),
        "log": rows[0]["log"] if rows else "",
        "brokers": len(rows),
        "nodes": rows,
    }
