"""``streamrec bench``, ``streamrec reliability`` and ``streamrec demo``: whole-system runs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from stream_app.cli.common import check_format
from stream_app.cli.errors import UserError
from stream_app.settings import get_settings


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _catalogue_sizes(items: str) -> list[int]:
    """``--items 10000,50000`` as integers (each at least 10).

    >>> _catalogue_sizes("10000, 50000")
    [10000, 50000]
    """
    try:
        sizes = [int(x) for x in items.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(f"{items!r} is not a comma-separated list of integers", param_hint="--items") from None
    if not sizes or min(sizes) < 10:
        raise typer.BadParameter("catalogue sizes must be integers >= 10", param_hint="--items")
    return sizes


def bench(
    out: Path = typer.Option(..., "--out", help="where to write the JSON report"),
    quick: bool = typer.Option(False, "--quick", help="tiny sizes (a smoke run of about a minute)"),
    items: str | None = typer.Option(None, "--items", help="catalogue sizes, comma separated (default 10000,50000,100000)"),
    events: int | None = typer.Option(None, "--events", "-n", help="backlog events per catalogue"),
    users: int | None = typer.Option(None, "--users", help="synthetic users"),
    skip_naive: bool = typer.Option(False, "--skip-naive", help="do not measure the per-event pipeline"),
    skip_ceiling: bool = typer.Option(False, "--skip-ceiling", help="do not measure the passthrough ceiling"),
    skip_swap: bool = typer.Option(False, "--skip-swap", help="do not measure a hot swap under load"),
    profile: Path | None = typer.Option(None, "--profile", metavar="<dir>",
                                        help="record each drain worker with py-spy into this folder"),
    workers: int = typer.Option(1, "--workers", min=1, max=16,
                                help="worker processes in the group (one per core is typical)"),
    scaleout: str | None = typer.Option(
        None, "--scaleout", metavar="1,2,4",
        help="instead: the scale-out scenario, the same stream through groups of these sizes with and without "
             "shared item knowledge (quality judged from the pushed lists, events/s, shared bytes per event)"),
) -> None:
    """End-to-end benchmark through the broker: throughput, latency, ceiling, naive, swap, memory."""
    from stream_app.ops.bench import run_bench, summary_table

    if scaleout is not None:
        _bench_scaleout(out, scaleout, events, users, items)
        return

    sizes = _catalogue_sizes(items) if items is not None else None
    if events is not None and events < 100:
        raise typer.BadParameter(f"{events} is too few; the backlog needs >= 100 events", param_hint="--events")
    if users is not None and users < 1:
        raise typer.BadParameter("--users must be >= 1", param_hint="--users")
    if out.exists() and out.is_dir():
        raise typer.BadParameter(f"{out} is a directory", param_hint="--out")
    if profile is not None and profile.exists() and not profile.is_dir():
        raise typer.BadParameter(f"{profile} exists and is not a folder", param_hint="--profile")
    report = run_bench(get_settings(), out, quick=quick, items=sizes, events=events, users=users,
                       skip_naive=skip_naive, skip_ceiling=skip_ceiling, skip_swap=skip_swap,
                       command=["streamrec", *sys.argv[1:]], log=_log, profile_dir=profile, workers=workers)
    typer.echo(summary_table(report))
    typer.echo(f"report written to {out}")


def _bench_scaleout(out: Path, groups_arg: str, events: int | None, users: int | None, items: str | None) -> None:
    from stream_app.ops.bench.scaleout import run_scaleout, scaleout_table

    try:
        groups = [int(x) for x in groups_arg.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(f"{groups_arg!r} is not a comma-separated list of integers",
                                 param_hint="--scaleout") from None
    if not groups or min(groups) < 1 or max(groups) > 16:
        raise typer.BadParameter("group sizes must be integers from 1 to 16", param_hint="--scaleout")
    sizes = _catalogue_sizes(items) if items is not None else [2_000]
    if len(sizes) != 1:
        raise typer.BadParameter("the scale-out scenario takes one catalogue size", param_hint="--items")
    if events is not None and events < 1000:
        raise typer.BadParameter(f"{events} is too few to judge quality; use >= 1000", param_hint="--events")
    if users is not None and users < 1:
        raise typer.BadParameter("--users must be >= 1", param_hint="--users")
    if out.exists() and out.is_dir():
        raise typer.BadParameter(f"{out} is a directory", param_hint="--out")
    report = run_scaleout(get_settings(), out, groups, events=events or 40_000, users=users or 4_000,
                          items=sizes[0], command=["streamrec", *sys.argv[1:]], log=_log)
    typer.echo(scaleout_table(report))
    typer.echo(f"report written to {out}")


def reliability(
    out: Path = typer.Option(Path("docs/RELIABILITY.md"), "--out", help="where to write the Markdown report"),
    crashes: int = typer.Option(50, "--crashes", min=1, help="kill -9 rounds under load"),
    soak_s: float = typer.Option(600.0, "--soak-s", min=1, help="soak length in seconds (70% load)"),
    burst_s: float = typer.Option(60.0, "--burst-s", min=1, help="burst length in seconds (10x rate)"),
    quick: bool = typer.Option(False, "--quick", help="short versions (3 crashes, 20 s soak, 10 s burst)"),
    only: str | None = typer.Option(None, "--only",
                                    help="comma-separated subset of crash,broker,fuzz,models,soak,failover,catalogue"),
    notes: str = typer.Option("", "--notes", help="a paragraph added to the report"),
    membership: str = typer.Option("dynamic", "--membership",
                                   help="group membership of the crashed worker: dynamic | static"),
) -> None:
    """Reliability suite on the broker of STREAMREC_BROKER: crashes, broker restart, bad input and models,
    soak and burst, and a broker failover on a private three-broker cluster; figures go to a Markdown report."""
    from stream_app import broker
    from stream_app.ops.reliability import SCENARIOS, SuiteConfig, render, run_suite

    if membership not in ("dynamic", "static"):
        raise typer.BadParameter(f"{membership!r} is not dynamic or static", param_hint="--membership")
    chosen = tuple(x.strip() for x in only.split(",") if x.strip()) if only else SCENARIOS
    unknown = [x for x in chosen if x not in SCENARIOS]
    if unknown:
        raise typer.BadParameter(f"unknown scenario(s) {unknown}; choose from {','.join(SCENARIOS)}",
                                 param_hint="--only")
    s = get_settings()
    host, port = s.broker_host_port
    on_shared_broker = set(chosen) - {"broker", "models", "failover"}  # those start their own broker or need none
    if on_shared_broker and not broker.status(host, port, s.kafka_data_dir)["reachable"]:
        raise UserError(f"no Kafka broker answers at {s.bootstrap}; run `streamrec kafka up` first")
    cfg = SuiteConfig(crashes=crashes, soak_s=soak_s, burst_s=burst_s, quick=quick, membership=membership)
    results = run_suite(s.kafka_connection(), s.kafka_cache_dir, cfg, chosen, log=_log)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, cfg, " ".join(["streamrec", *sys.argv[1:]]), notes))
    typer.echo(f"report written to {out}")
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    if failed:
        raise UserError(f"scenario(s) did not finish: {', '.join(failed)} (see {out})")


def demo(
    dataset: Path | None = typer.Option(None, "--dataset", help="replay this file instead of a synthetic stream"),
    fmt: str = typer.Option("movielens", "--format", "-f", help="format of --dataset"),
    events: int = typer.Option(20_000, "--events", "-n", help="synthetic events to send", min=1),
    rate: float = typer.Option(500.0, "--rate", help="events per second (0 = as fast as possible)", min=0),
    keep_running: bool = typer.Option(True, "--keep-running/--exit", help="keep serving after the stream ends"),
) -> None:
    """Broker up, a worker, a replayed stream, recommendations printed; Ctrl-C stops everything."""
    from stream_app.ops.demo import run_demo

    check_format(fmt)
    run_demo(get_settings(), dataset=dataset, fmt=fmt, events=events, rate=rate, keep_running=keep_running)
