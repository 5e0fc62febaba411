"""``streamrec kafka up|down|status``: the local broker (KRaft, single node, loopback)."""

from __future__ import annotations

import typer

from stream_app.settings import get_settings


def up(timeout: float = typer.Option(120.0, help="seconds to wait for the broker")) -> None:
    """Start the local broker (fetching Kafka from Maven Central once) and create the topics."""
    from stream_app import broker

    s = get_settings()
    host, port = s.broker_host_port
    st = broker.up(host, port, s.kafka_data_dir, s.kafka_cache_dir, s.topic_partitions(), timeout=timeout,
                   configs=s.topic_configs())
    typer.echo(f"kafka up at {st['bootstrap']} (pid {st['pid']}), topics: "
               + ", ".join(f"{t}[{n}]" for t, n in st["topics"].items()))


def down() -> None:
    """Stop the local broker."""
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
        typer.echo(f"kafka {state} at {st['bootstrap']}; topics: "
                   + (", ".join(f"{t}[{n}]" for t, n in st["topics"].items()) or "-"))
    raise typer.Exit(0 if st["reachable"] else 3)
