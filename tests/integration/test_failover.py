"""A three-broker KRaft cluster on loopback: start, replication 3 / min.insync 2, failover under load, stop.

The cluster is this module's own, on free ports (the session broker is not touched). The failover
test is the short version of ``streamrec reliability --only failover``: the broker leading the
most partitions is killed with SIGKILL while events stream, and comes back later.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_app import broker
from stream_app.ops.reliability.failover import failover_scenario, free_block, replication_of
from tests.integration.conftest import CACHE

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CHECK_TOPIC = {"fo-check": 2}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, dict]]:
    data = tmp_path_factory.mktemp("kafka-cluster")
    port = free_block()
    try:
        st = broker.up("127.0.0.1", port, data, CACHE, CHECK_TOPIC, timeout=180, brokers=3)
        yield data, port, st
    finally:
        broker.down(data, timeout=20)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting to be reaped is gone too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_three_brokers_serve_and_topics_get_three_replicas(cluster):
    data, port, st = cluster
    assert st["running"] and st["brokers"] == 3
    assert st["bootstrap"] == f"127.0.0.1:{port},127.0.0.1:{port + 2},127.0.0.1:{port + 4}"
    pids = [n["pid"] for n in st["nodes"]]
    assert len(set(pids)) == 3 and all(n["running"] and n["serving"] for n in st["nodes"])
    parts = broker.describe_partitions(st["bootstrap"], list(CHECK_TOPIC))
    assert len(parts) == 2 and all(p["replicas"] == [1, 2, 3] and p["isr"] == [1, 2, 3] for p in parts), parts
    assert replication_of(st["bootstrap"], list(CHECK_TOPIC)) == {"fo-check": "3 / 2"}
    again = broker.up("127.0.0.1", port, data, CACHE, {}, timeout=60)  # the layout is remembered
    assert [n["pid"] for n in again["nodes"]] == pids
    assert broker.status("127.0.0.1", port, data)["running"]


def test_single_node_start_is_refused_while_the_cluster_runs(cluster):
    data, port, _st = cluster
    with pytest.raises(broker.BrokerError, match="cluster runs"):
        broker.up("127.0.0.1", port, data, CACHE, {}, timeout=30, brokers=1)


def test_kill9_of_the_busiest_broker_loses_nothing_and_the_worker_rides_through(cluster, tmp_path, request):
    data, port, _st = cluster
    # Kafka fences a dead broker after 9 s (broker.session.timeout.ms): it comes back well after that
    sizes = (dict(rate=200.0, before_s=10.0, down_s=30.0, after_s=20.0) if request.config.getoption("--reliability-full")
             else dict(rate=100.0, before_s=3.0, down_s=20.0, after_s=5.0))
    down_s = sizes["down_s"]
    fig = failover_scenario(CACHE, tmp_path, **sizes, cluster=(data, port))
    why = {k: fig.get(k) for k in ("examples", "worker_warnings", "killed_broker_led")}
    assert fig["replication"] == {"events": "3 / 2", "recommendations": "3 / 2", "changelog": "3 / 2"}
    assert fig["killed_broker_led"], "the killed broker led partitions of events or recommendations"
    assert fig["events_acked"] >= 1500 and fig["events_send_failed"] == 0
    assert fig["acked_but_missing_from_log"] == 0
    assert fig["acked_without_recommendation"] == 0 and fig["events_without_recommendation"] == 0, why
    assert fig["users_mismatched"] == 0 and fig["lost_updates"] == 0 and fig["double_applied_updates"] == 0, why
    assert fig["worker_alive"] and fig["worker_restarts"] == 0
    # the two brokers left served on their own: recommendations resumed before the restart
    assert fig["first_recommendation_after_kill_s"] is not None and fig["first_recommendation_after_kill_s"] < down_s
    assert fig["all_partitions_answering_s"] is not None and fig["all_partitions_answering_s"] < down_s
    assert fig["leaders_moved_s"] is not None and fig["replicas_in_sync_after_restart_s"] is not None
    assert fig["lag_max_after_kill"] is not None
    assert broker.status("127.0.0.1", port, data)["running"], "the killed broker is back"


def test_down_stops_every_node(cluster):
    data, port, _st = cluster
    pids = [n["pid"] for n in broker.status("127.0.0.1", port, data)["nodes"]]
    assert len(pids) == 3 and all(pids)
    assert broker.down(data, timeout=20)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
    st = broker.status("127.0.0.1", port, data)
    assert not st["running"] and not st["reachable"] and not any(n["running"] for n in st["nodes"])
    assert not broker.down(data)
