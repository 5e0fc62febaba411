"""``streamrec produce`` and ``streamrec consume``: events into Kafka, recommendations out.

The sending loop is :func:`stream_app.cli.produce.produce_events` (the demo uses it too); the
tailing is :mod:`stream_app.cli.consume`.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from stream_app.cli.common import FORMAT_HELP, check_format, require_file
from stream_app.settings import get_settings


def produce(
    file: Path | None = typer.Argument(None, help="events file to replay (sorted by time)"),
    fmt: str = typer.Option("jsonl", "--format", "-f", help=FORMAT_HELP),
    rate: float = typer.Option(0.0, "--rate", help="events per second (0 = as fast as possible)", min=0),
    synthetic: bool = typer.Option(False, "--synthetic", help="generate a synthetic stream instead of a file"),
    events: int = typer.Option(10_000, "--events", "-n", help="with --synthetic: how many events", min=1),
    users: int = typer.Option(2_000, "--users", help="with --synthetic: users", min=1),
    items: int = typer.Option(5_000, "--items", help="with --synthetic: initial catalogue size", min=1),
    seed: int = typer.Option(0, "--seed", help="with --synthetic: random seed"),
    limit: int = typer.Option(0, "--limit", help="send at most this many events from the file (0 = all)", min=0),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Replay a dataset (or a synthetic stream) into the events topic; ``--format items-jsonl`` sends a file
    of item records to the catalogue topic instead."""
    from stream_app.cli.produce import produce_events

    if synthetic == (file is not None):
        raise typer.BadParameter("give either FILE or --synthetic (not both)", param_hint="FILE")
    s = get_settings()
    if fmt == "items-jsonl":
        if file is None:
            raise typer.BadParameter("--format items-jsonl reads a FILE of item records", param_hint="FILE")
        from stream_app.cli.produce import produce_items

        sent, invalid, secs = produce_items(require_file(file), s.kafka_connection(), s.items_topic, progress)
        typer.echo(f"sent {sent} item records to {s.items_topic} ({invalid} invalid, sent as-is for the DLQ) "
                   f"in {secs:.1f}s", err=True)
        return
    check_format(fmt)
    source: Iterable[Any]
    with contextlib.ExitStack() as stack:
        if file is None:
            from stream_app.data.synthetic import generate

            source, total = generate(events, n_users=users, n_items=items, seed=seed), events
        else:
            from stream_app.data.ordering import time_ordered

            # streamed in time order with bounded memory; len() is the sorting pass, before any send
            rows = stack.enter_context(time_ordered(require_file(file), fmt, errors="keep"))
            total = min(len(rows), limit) if limit else len(rows)
            source = itertools.islice(rows, total)
        sent, rejected, secs = produce_events(source, s.kafka_connection(), rate=rate, total=total,
                                              progress=progress, topic=s.events_topic)
    typer.echo(f"sent {sent} events ({rejected} invalid rows sent as-is for the DLQ) in {secs:.1f}s"
               f" = {sent / max(secs, 1e-9):,.0f} events/s", err=True)


def consume(
    topic: str | None = typer.Option(None, "--topic", help="topic to read (default: recommendations)"),
    json_out: bool = typer.Option(False, "--json", help="print each message as JSON"),
    max_messages: int = typer.Option(0, "--max", help="stop after this many messages (0 = never)", min=0),
    idle: float = typer.Option(0.0, "--idle-timeout", help="stop after this many seconds without a message", min=0),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="start at the oldest message"),
) -> None:
    """Tail recommendations (or another topic), readable or as JSON."""
    from stream_app.cli.consume import tail

    s = get_settings()
    tail(s.kafka_connection(), topic or s.recommendations_topic, json_out=json_out, max_messages=max_messages,
         idle_s=idle, from_beginning=from_beginning)
