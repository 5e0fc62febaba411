"""``streamrec``: the one command line of the project (see ``streamrec --help``).

A wrong argument gets one line on stderr and exit status 2; an error the user can fix (broker
down, file missing, bad format) gets one line and exit status 1. No tracebacks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer

try:  # typer vendors its own copy of click; accept both spellings of its exceptions
    from typer._click import exceptions as _tcx
except ImportError:  # pragma: no cover
    _tcx = click.exceptions

USAGE_ERRORS = (click.UsageError, _tcx.UsageError)
EXITS = (click.exceptions.Exit, _tcx.Exit if hasattr(_tcx, "Exit") else click.exceptions.Exit)
ABORTS = (click.exceptions.Abort, _tcx.Abort if hasattr(_tcx, "Abort") else click.exceptions.Abort)

from stream_app.settings import get_settings

FORMATS = ("jsonl", "movielens", "retailrocket", "otto", "taobao")

cli = typer.Typer(
    name="streamrec",
    help="Real-time streaming recommender: Kafka events in, fresh recommendations out.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
kafka_cli = typer.Typer(help="The local Kafka broker (KRaft, loopback).", no_args_is_help=True)
model_cli = typer.Typer(help="The deep model registry.", no_args_is_help=True)
cli.add_typer(kafka_cli, name="kafka")
cli.add_typer(model_cli, name="model")


class UserError(Exception):
    """An error the user can fix; printed as one line."""


# -- kafka ----------------------------------------------------------------------------------------
@kafka_cli.command("up")
def kafka_up(timeout: float = typer.Option(120.0, help="seconds to wait for the broker")) -> None:
    """Start the local broker (fetching Kafka from Maven Central once) and create the topics."""
    from stream_app import broker

    s = get_settings()
    host, port = s.broker_host_port
    st = broker.up(host, port, s.kafka_data_dir, s.kafka_cache_dir, s.topic_partitions(), timeout=timeout)
    typer.echo(f"kafka up at {st['bootstrap']} (pid {st['pid']}), topics: "
               + ", ".join(f"{t}[{n}]" for t, n in st["topics"].items()))


@kafka_cli.command("down")
def kafka_down() -> None:
    """Stop the local broker."""
    from stream_app import broker

    stopped = broker.down(get_settings().kafka_data_dir)
    typer.echo("kafka stopped" if stopped else "kafka was not running")


@kafka_cli.command("status")
def kafka_status(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show whether the local broker runs, and its topics."""
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


# -- worker ---------------------------------------------------------------------------------------
@cli.command("worker")
def worker() -> None:
    """Run a stream worker (several may run in one group; give each its own STREAMREC_DATA_DIR and port)."""
    from stream_app.worker.run import run_worker

    sys.argv = [sys.argv[0]]
    run_worker()


# -- produce / consume ----------------------------------------------------------------------------
@cli.command("produce")
def produce(
    file: Path | None = typer.Argument(None, help="events file to replay (sorted by time)"),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl | movielens | retailrocket | otto | taobao"),
    rate: float = typer.Option(0.0, "--rate", help="events per second (0 = as fast as possible)", min=0),
    synthetic: bool = typer.Option(False, "--synthetic", help="generate a synthetic stream instead of a file"),
    events: int = typer.Option(10_000, "--events", "-n", help="with --synthetic: how many events", min=1),
    users: int = typer.Option(2_000, "--users", help="with --synthetic: users", min=1),
    items: int = typer.Option(5_000, "--items", help="with --synthetic: initial catalogue size", min=1),
    seed: int = typer.Option(0, "--seed", help="with --synthetic: random seed"),
    limit: int = typer.Option(0, "--limit", help="send at most this many events from the file (0 = all)", min=0),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Replay a dataset (or a synthetic stream) into the events topic."""
    from stream_app.cli.produce import produce_events

    if synthetic == (file is not None):
        raise typer.BadParameter("give either FILE or --synthetic (not both)", param_hint="FILE")
    if fmt not in FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}",
                                 param_hint="--format")
    s = get_settings()
    if synthetic:
        from stream_app.data.synthetic import generate

        source = generate(events, n_users=users, n_items=items, seed=seed)
        total = events
    else:
        from stream_app.data.sources import read_events

        if not file.exists():
            raise UserError(f"no such file: {file}")
        rows = read_events(file, fmt, errors="keep")
        if limit:
            rows = rows[:limit]
        source, total = rows, len(rows)
    sent, rejected, secs = produce_events(source, s.bootstrap, rate=rate, total=total, progress=progress,
                                          kafka_kwargs=s.kafka_client_kwargs(), topic=s.events_topic)
    typer.echo(f"sent {sent} events ({rejected} invalid rows sent as-is for the DLQ) in {secs:.1f}s"
               f" = {sent / max(secs, 1e-9):,.0f} events/s", err=True)


@cli.command("consume")
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
    tail(s.bootstrap, topic or s.recommendations_topic, json_out=json_out, max_messages=max_messages, idle_s=idle,
         from_beginning=from_beginning, kafka_kwargs=s.kafka_client_kwargs())


# -- demo -----------------------------------------------------------------------------------------
@cli.command("demo")
def demo(
    dataset: Path | None = typer.Option(None, "--dataset", help="replay this file instead of a synthetic stream"),
    fmt: str = typer.Option("movielens", "--format", "-f", help="format of --dataset"),
    events: int = typer.Option(20_000, "--events", "-n", help="synthetic events to send", min=1),
    rate: float = typer.Option(500.0, "--rate", help="events per second (0 = as fast as possible)", min=0),
    keep_running: bool = typer.Option(True, "--keep-running/--exit", help="keep serving after the stream ends"),
) -> None:
    """Broker up, a worker, a replayed stream, recommendations printed; Ctrl-C stops everything."""
    from stream_app.ops.demo import run_demo

    if fmt not in FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}",
                                 param_hint="--format")
    run_demo(get_settings(), dataset=dataset, fmt=fmt, events=events, rate=rate, keep_running=keep_running)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamrec`` console script."""
    from pydantic import ValidationError

    from stream_app.cli.commands import register

    register(cli, model_cli, UserError)
    try:
        cli(args=argv, prog_name="streamrec", standalone_mode=False)
    except EXITS as exc:
        return exc.exit_code
    except ABORTS:
        typer.echo("streamrec: aborted", err=True)
        return 130
    except USAGE_ERRORS as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            typer.echo(exc.ctx.get_help())
            return 0
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        typer.echo(f"streamrec: error: {exc.format_message()}{where}".replace("\n", " "), err=True)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "?"
        typer.echo(f"streamrec: error: bad setting STREAMREC_{field.upper()}: {first['msg']}", err=True)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from stream_app.cli.errors import user_message

        msg = user_message(exc)
        if msg is None:
            raise
        typer.echo(f"streamrec: error: {msg}", err=True)
        return 1
    return 0
