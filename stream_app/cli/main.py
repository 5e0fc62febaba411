"""``streamrec``: the one command line of the project (see ``streamrec --help``).

This module assembles the command groups (one module each: :mod:`.kafka`, :mod:`.worker`,
:mod:`.stream`, :mod:`.models`, :mod:`.evaluate`, :mod:`.ops`) into one typer app and turns
errors into exit statuses. A wrong argument gets one line on stderr (``streamrec: error: ...``)
and exit status 2; an error the user can fix (broker down, file missing, bad format) gets one line
and exit status 1 (:mod:`.errors` decides which errors those are). No tracebacks for either.
The command modules import their heavy libraries inside the commands, so ``--help`` is quick.

>>> main(["model"])  # a group without a command prints its help  # doctest: +ELLIPSIS
Usage: streamrec model [OPTIONS] COMMAND [ARGS]...
...
0
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from stream_app.cli import evaluate, kafka, models, ops, stream, worker

HELP = "Real-time streaming recommender: Kafka events in, fresh recommendations out."


def _help_when_no_command(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def _group(**kwargs: object) -> typer.Typer:
    """A typer app that prints its help when called without a command (exit status 0)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, **kwargs)  # type: ignore[arg-type]
    app.callback(invoke_without_command=True)(_help_when_no_command)
    return app


def build_app() -> typer.Typer:
    """The ``streamrec`` app: every command group, registered from its module."""
    app = _group(name="streamrec", help=HELP, rich_markup_mode=None)

    kafka_app = _group(help="The local Kafka broker (KRaft, loopback).")
    kafka_app.command("up")(kafka.up)
    kafka_app.command("down")(kafka.down)
    kafka_app.command("status")(kafka.status)
    app.add_typer(kafka_app, name="kafka")

    app.command("worker")(worker.worker)
    app.command("produce")(stream.produce)
    app.command("consume")(stream.consume)
    app.command("demo")(ops.demo)

    app.command("train")(models.train)
    model_app = _group(help="The deep model registry.")
    model_app.command("list")(models.model_list)
    model_app.command("promote")(models.model_promote)
    model_app.command("rollback")(models.model_rollback)
    app.add_typer(model_app, name="model")

    app.command("eval")(evaluate.eval_cmd)
    app.command("bench")(ops.bench)
    app.command("reliability")(ops.reliability)
    return app


def _usage_line(exc: typer.TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"streamrec: error: {exc.format_message()}{where}".replace("\n", " ")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamrec`` console script; returns the exit status."""
    from pydantic import ValidationError

    try:
        rv = build_app()(args=None if argv is None else list(argv), prog_name="streamrec", standalone_mode=False)
    except typer.Abort:
        typer.echo("streamrec: aborted", err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # click's exceptions (typer ships its own click)
        if exc.exit_code == 2:  # a usage error: unknown option, bad value, missing argument
            typer.echo(_usage_line(exc), err=True)
        else:
            typer.echo(f"streamrec: error: {exc.format_message()}", err=True)
        return exc.exit_code
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
    # Without standalone mode, typer returns the status of a ``typer.Exit`` instead of raising it.
    return rv if isinstance(rv, int) else 0
