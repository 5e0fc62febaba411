"""``streamrec kafka up|down|status``: the local broker (KRaft, loopback): one node, or a cluster of three."""

from __future__ import annotations

from typing import Any

import typer

from stream_app.settings import get_settings


def _topics(st: dict[str, Any]) -> str:
    return ", ".join(f"{t}[{n}]" for t, n in st["topics"].items()) or "-"


def up(
    timeout: float = typer.Option(120.0, help="seconds to wait for the broker"),
    brokers: int | None = typer.Option(
        None, "--brokers", metavar="1|3",
        help="nodes: 1, or a 3-node cluster on the port of STREAMREC_BROKER and the next even ones "
             "(default: what the data folder last ran, else 1)"),
) -> None:
    """Start the local broker (fetching Kafka from Maven Central once) and create the topics."""
    from stream_app import broker
    from stream_app.broker.cluster import SIZES

    if brokers is not None and brokers not in SIZES:
        raise typer.BadParameter(f"{brokers} is not 1 or 3 (a KRaft quorum of two controllers cannot lose either, "
                                 "so two brokers are no more available than one)", param_hint="--brokers")
    s = get_settings()
    host, port = s.broker_host_port
    rf, isr = s.topic_replication()
    st = broker.up(host, port, s.kafka_data_dir, s.kafka_cache_dir, s.topic_partitions(), timeout=timeout,
                   configs=s.topic_configs(), brokers=brokers, replication=rf, min_insync=isr)
    if "nodes" not in st:
        typer.echo(f"kafka up at {st['bootstrap']} (pid {st['pid']}), topics: {_topics(st)}")
        return
    pids = ", ".join(str(n["pid"]) for n in st["nodes"])
    typer.echo(f"kafka up: {st['brokers']} brokers at {st['bootstrap']} (pids {pids}), topics: {_topics(st)}")
    if s.bootstrap != st["bootstrap"]:
        typer.echo(f"give clients every broker, so they start while one is down: "
                   f"STREAMREC_BROKER={','.join('kafka://' + b for b in st['bootstrap'].split(','))}")


def down() -> None:
    """Stop the local broker (every node of a cluster)."""
    from stream_app import broker

    stopped = broker.down(get_settings().kafka_data_dir)
    typer.echo("kafka stopped" if stopped else "kafka was not running")


def status(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show whether the local broker runs, and its topics (exit status 3 when none answers)."""
    import orjson

    from stream_app import broker

    s = get_settings()
    host, port = s.broker_host_port
    st = broker.status(host, port, s.kafka_data_dir)
    if json_out:
        typer.echo(orjson.dumps(st).decode())
    else:
        state = "running" if st["running"] else ("reachable (not ours)" if st["reachable"] else "not running")
        if "nodes" in st:
            state = ("running" if st["running"] else "degraded" if st["reachable"] else "not running") + \
                f" ({sum(n['running'] for n in st['nodes'])} of {st['brokers']} brokers)"
        typer.echo(f"kafka {state} at {st['bootstrap']}; topics: {_topics(st)}")
        for n in st.get("nodes", []):
            typer.echo(f"  node {n['node_id']} at {n['bootstrap']}: "
                       + (f"running (pid {n['pid']})" if n["running"] else "not running")
                       + ("" if n["serving"] or not n["running"] else ", not serving yet"))
    raise typer.Exit(0 if st["reachable"] else 3)
