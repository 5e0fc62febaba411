"""The KRaft node settings: one node exactly as before, three nodes that form one quorum."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.broker import cluster, process

HOST = "127.0.0.1"


def _nodes(tmp_path: Path) -> list[tuple[cluster.Node, dict[str, str]]]:
    nodes = cluster.layout(HOST, 19092, tmp_path, 3)
    voters = {n.node_id: n.controller_port for n in nodes}
    return [(n, process.server_properties(HOST, n.port, n.controller_port, n.data_dir, node_id=n.node_id,
                                          voters=voters)) for n in nodes]


def test_single_node_is_unchanged(tmp_path):
    assert process.server_properties(HOST, 9092, 9093, tmp_path) == {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": "1@127.0.0.1:9093",
        "listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:9092",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(tmp_path / "kraft"),
        "num.partitions": "1",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }


def test_three_nodes_have_their_own_ids_ports_and_folders(tmp_path):
    props = [p for _n, p in _nodes(tmp_path)]
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert [p["listeners"] for p in props] == [
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095",
        "PLAINTEXT://127.0.0.1:19096,CONTROLLER://127.0.0.1:19097",
    ]
    assert [p["advertised.listeners"] for p in props] == [f"PLAINTEXT://127.0.0.1:{p}" for p in (19092, 19094, 19096)]
    assert len({p["log.dirs"] for p in props}) == 3
    assert all(Path(p["log.dirs"]).parent.parent == tmp_path for p in props)


def test_three_nodes_share_one_quorum_and_replicate_internal_topics(tmp_path):
    for _node, p in _nodes(tmp_path):
        assert p["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"
        assert p["min.insync.replicas"] == "2" and p["default.replication.factor"] == "3"


def test_written_config_is_what_the_node_runs_with(tmp_path):
    node, expected = _nodes(tmp_path)[1]
    process.write_config(HOST, node.port, node.controller_port, node.data_dir, node_id=2,
                         voters={1: 19093, 2: 19095, 3: 19097})
    lines = process.paths(node.data_dir)["props"].read_text().splitlines()
    written = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert written == expected


def test_cluster_id_is_read_back_from_formatted_storage(tmp_path):
    kraft = process.paths(tmp_path)["kraft"]
    assert process.stored_cluster_id(tmp_path) is None
    kraft.mkdir(parents=True)
    (kraft / "meta.properties").write_text("#\nnode.id=2\nversion=1\ncluster.id=abcDEF123_-xyz0987654w\n")
    assert process.stored_cluster_id(tmp_path) == "abcDEF123_-xyz0987654w"
    ids = {process.new_cluster_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 22 and not i.startswith("-") for i in ids)


@pytest.mark.parametrize("brokers", [0, 2, 4, -1])
def test_unsupported_cluster_sizes_are_refused(brokers):
    with pytest.raises(cluster.BrokerError, match="1 or 3"):
        cluster.check_size(brokers)


def test_layout_file_round_trip_and_an_idle_cluster(tmp_path):
    assert cluster.nodes_of(tmp_path) == [] and cluster.read_layout(tmp_path) is None
    (tmp_path / cluster.LAYOUT_FILE).write_text('{"brokers": 3, "host": "127.0.0.1", "port": 19092, "cluster_id": "x"}')
    assert [n.port for n in cluster.nodes_of(tmp_path)] == [19092, 19094, 19096]
    assert not cluster.any_running(tmp_path)
    st = cluster.status(tmp_path)
    assert st["brokers"] == 3 and not st["running"] and not st["reachable"]
    assert [n["running"] for n in st["nodes"]] == [False, False, False]
    assert st["bootstrap"] == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    with pytest.raises(cluster.BrokerError, match="not running"):
        cluster.kill9(tmp_path, 2)
    cluster.forget_layout(tmp_path)
    assert cluster.nodes_of(tmp_path) == []
