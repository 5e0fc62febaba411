"""The model-side commands of ``streamrec``: train, model list|promote|rollback, eval, bench."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import typer

from stream_app.settings import get_settings

FORMATS = ("jsonl", "movielens", "retailrocket", "otto", "taobao")


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or plain seconds -> seconds.

    >>> parse_duration("15m"), parse_duration("2h"), parse_duration("45")
    (900.0, 7200.0, 45.0)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 2h or 1d", param_hint="--every")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}",
                                 param_hint="--format")


def register(cli: typer.Typer, model_cli: typer.Typer, user_error: type[Exception]) -> None:
    if getattr(cli, "_streamrec_registered", False):
        return
    cli._streamrec_registered = True

    @cli.command("train")
    def train(
        input_file: Path | None = typer.Option(None, "--input", help="train on this file instead of the events topic"),
        fmt: str = typer.Option("jsonl", "--format", "-f", help="format of --input"),
        every: str | None = typer.Option(None, "--every", help="retrain periodically, e.g. 15m (Ctrl-C stops)"),
        epochs: int = typer.Option(10, "--epochs", min=1),
        dim: int = typer.Option(64, "--dim", min=8),
        max_events: int = typer.Option(0, "--max-events", help="train on the newest N events (0 = all)", min=0),
        device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when present)"),
        tolerance: float = typer.Option(0.01, "--tolerance", help="promote if NDCG@10 >= current - tolerance"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Train the deep model on the event log and promote it if it is at least as good."""
        from models.deep.registry import Registry
        from models.deep.train import TrainConfig, check_device
        from models.deep.train import train as train_model

        _check_format(fmt)
        period = parse_duration(every) if every else None
        if device and not re.fullmatch(r"cpu|cuda(:\d+)?", device):
            raise typer.BadParameter(f"{device!r} is not cpu or cuda[:N]", param_hint="--device")
        try:
            check_device(device)
        except ValueError as exc:
            raise user_error(str(exc)) from None
        s = get_settings()
        registry = Registry(s.registry_path)
        while True:
            if input_file is not None:
                from stream_app.data.eventlog import read_file

                if not input_file.exists():
                    raise user_error(f"no such file: {input_file}")
                events = read_file(input_file, fmt)
                if max_events:
                    events = events[-max_events:]
            else:
                from stream_app.data.eventlog import read_topic

                events = read_topic(s.bootstrap, s.events_topic, max_events, progress, s.kafka_client_kwargs())
            if len(events) < 10:
                if period is None:
                    raise user_error(f"only {len(events)} events to train on; produce some first")
                typer.echo(f"only {len(events)} events so far; next try in {period:.0f}s", err=True)
                time.sleep(period)
                continue
            t0 = time.perf_counter()
            result = train_model(events, TrainConfig(epochs=epochs, dim=dim), device=device, progress=progress)
            version, promoted = registry.save(result, promote_if_better=True, tolerance=tolerance)
            typer.echo(orjson.dumps({
                "version": version, "promoted": promoted, "events": len(events), "device": result.device,
                "metrics": result.metrics, "epoch_seconds": [round(x, 3) for x in result.epoch_seconds],
                "seconds": round(time.perf_counter() - t0, 2),
            }).decode())
            if period is None:
                return
            time.sleep(period)

    @cli.command("eval")
    def eval_cmd(
        out: Path = typer.Option(..., "--out", help="where to write the JSON result"),
        dataset: Path | None = typer.Option(None, "--dataset", help="dataset file (ratings.csv, events.csv, ...)"),
        fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl | movielens | retailrocket | otto | taobao"),
        synthetic: int = typer.Option(0, "--synthetic", help="evaluate on N synthetic events instead of a file",
                                      min=0),
        retrain_every: int = typer.Option(0, "--retrain-every", help="events between deep retrainings (0 = a fifth)",
                                          min=0),
        epochs: int = typer.Option(5, "--epochs", help="epochs per retraining", min=1),
        limit: int = typer.Option(0, "--limit", help="use only the first N events in time order (0 = all)", min=0),
        every: int = typer.Option(1, "--every", help="score every n-th event (all are learned)", min=1),
        half_life: float = typer.Option(0.0, "--half-life", help="popularity half-life in seconds (0 = no decay)",
                                        min=0),
        device: str | None = typer.Option(None, "--device", help="cpu or cuda for retraining"),
        markdown: Path | None = typer.Option(None, "--markdown", help="also append a Markdown table here"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Prequential evaluation of popularity, cooccurrence, online, deep and hybrid in one replay."""
        from stream_app.ops.evaluation import markdown_table, run_eval, write_result

        if (dataset is None) == (synthetic == 0):
            raise typer.BadParameter("give either --dataset PATH --format FMT or --synthetic N", param_hint="--dataset")
        if synthetic:
            from models.base import Interaction
            from stream_app.data.synthetic import generate

            events = [Interaction(e["user_id"], e["item_id"], e["type"], e["ts"])
                      for e in generate(synthetic, n_users=max(100, synthetic // 25), n_items=max(500, synthetic // 10),
                                        seed=11)]
            name = f"synthetic ({synthetic} events)"
        else:
            from stream_app.data.eventlog import read_file

            _check_format(fmt)
            if not dataset.exists():
                raise user_error(f"no such file: {dataset}")
            events = read_file(dataset, fmt)
            name = (f"{dataset.parent.name}/{dataset.name}"
                    if dataset.name in ("ratings.csv", "events.csv", "train.jsonl") else dataset.name)
        if limit:
            events = events[:limit]
        try:
            result = run_eval(events, name, retrain_every or None, epochs, device, half_life or None, every, progress)
        except ValueError as exc:
            raise user_error(str(exc)) from None
        write_result(result, out)
        table = markdown_table(result)
        if markdown is not None:
            with open(markdown, "a") as fh:
                fh.write("\n" + table)
        typer.echo(table)

    @model_cli.command("list")
    def model_list(json_out: bool = typer.Option(False, "--json")) -> None:
        """List model versions (the one in service is marked *)."""
        from models.deep.registry import Registry

        reg = Registry(get_settings().registry_path)
        rows = reg.list()
        current = reg.current()
        if json_out:
            typer.echo(orjson.dumps({"current": current, "versions": rows}).decode())
            return
        if not rows:
            typer.echo("no model versions yet; run `streamrec train`")
        for r in rows:
            m = r.get("metrics", {})
            mark = "*" if r.get("version") == current else " "
            typer.echo(f"{mark} {r.get('version')}  ndcg@10={m.get('ndcg@10', float('nan')):.4f}  "
                       f"hr@10={m.get('hr@10', float('nan')):.4f}  items={r.get('items', '?')}")

    @model_cli.command("promote")
    def model_promote(version: str = typer.Argument(..., help="version to put in service")) -> None:
        """Put a version in service (workers swap it in within seconds)."""
        from models.deep.registry import Registry

        Registry(get_settings().registry_path).promote(version)
        typer.echo(f"promoted {version}")

    @model_cli.command("rollback")
    def model_rollback() -> None:
        """Go back to the previously promoted version."""
        from models.deep.registry import Registry

        version = Registry(get_settings().registry_path).rollback()
        typer.echo(f"rolled back to {version}")

    @cli.command("bench")
    def bench(
        out: Path = typer.Option(..., "--out", help="where to write the JSON report"),
        quick: bool = typer.Option(False, "--quick", help="tiny sizes (a smoke run of about a minute)"),
        items: str | None = typer.Option(None, "--items",
                                            help="catalogue sizes, comma separated (default 10000,50000,100000)"),
        events: int | None = typer.Option(None, "--events", "-n", help="backlog events per catalogue"),
        users: int | None = typer.Option(None, "--users", help="synthetic users"),
        skip_naive: bool = typer.Option(False, "--skip-naive", help="do not measure the per-event pipeline"),
        skip_ceiling: bool = typer.Option(False, "--skip-ceiling", help="do not measure the passthrough ceiling"),
        skip_swap: bool = typer.Option(False, "--skip-swap", help="do not measure a hot swap under load"),
        profile: Path | None = typer.Option(None, "--profile", metavar="<dir>",
                                               help="record each drain worker with py-spy into this folder"),
        workers: int = typer.Option(1, "--workers", min=1, max=16,
                                    help="worker processes in the group (one per core is typical)"),
    ) -> None:
        """End-to-end benchmark through the broker: throughput, latency, ceiling, naive, swap, memory."""
        import sys

        from stream_app.ops.bench import run_bench, summary_table

        sizes: list[int] | None = None
        if items is not None:
            try:
                sizes = [int(x) for x in items.replace(" ", "").split(",") if x]
            except ValueError:
                raise typer.BadParameter(f"{items!r} is not a comma-separated list of integers",
                                         param_hint="--items") from None
            if not sizes or min(sizes) < 10:
                raise typer.BadParameter("catalogue sizes must be integers >= 10", param_hint="--items")
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
                           command=["streamrec", *sys.argv[1:]], log=lambda m: typer.echo(m, err=True),
                           profile_dir=profile, workers=workers)
        typer.echo(summary_table(report))
        typer.echo(f"report written to {out}")

    @cli.command("reliability")
    def reliability(
        out: Path = typer.Option(Path("docs/RELIABILITY.md"), "--out", help="where to write the Markdown report"),
        crashes: int = typer.Option(50, "--crashes", min=1, help="kill -9 rounds under load"),
        soak_s: float = typer.Option(600.0, "--soak-s", min=1, help="soak length in seconds (70% load)"),
        burst_s: float = typer.Option(60.0, "--burst-s", min=1, help="burst length in seconds (10x rate)"),
        quick: bool = typer.Option(False, "--quick", help="short versions (3 crashes, 20 s soak, 10 s burst)"),
        only: str | None = typer.Option(None, "--only", help="comma-separated subset of "
                                           "crash,broker,fuzz,models,soak"),
        notes: str = typer.Option("", "--notes", help="a paragraph added to the report"),
        membership: str = typer.Option("dynamic", "--membership",
                                       help="group membership of the crashed worker: dynamic | static"),
    ) -> None:
        """Reliability suite on the broker of STREAMREC_BROKER: crashes, broker restart, bad input and models,
        soak and burst; figures go to a Markdown report."""
        import sys

        from stream_app.ops.reliability import SCENARIOS, SuiteConfig, render, run_suite

        if membership not in ("dynamic", "static"):
            raise typer.BadParameter(f"{membership!r} is not dynamic or static", param_hint="--membership")
        chosen = tuple(x.strip() for x in only.split(",") if x.strip()) if only else SCENARIOS
        unknown = [x for x in chosen if x not in SCENARIOS]
        if unknown:
            raise typer.BadParameter(f"unknown scenario(s) {unknown}; choose from {','.join(SCENARIOS)}",
                                     param_hint="--only")
        s = get_settings()
        from stream_app import broker

        host, port = s.broker_host_port
        if not broker.status(host, port, s.kafka_data_dir)["reachable"]:
            raise user_error(f"no Kafka broker answers at {s.bootstrap}; run `streamrec kafka up` first")
        cfg = SuiteConfig(crashes=crashes, soak_s=soak_s, burst_s=burst_s, quick=quick, membership=membership)
        results = run_suite(s.bootstrap, s.kafka_cache_dir, cfg, chosen, log=lambda m: typer.echo(m, err=True))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(results, cfg, " ".join(["streamrec", *sys.argv[1:]]), notes))
        typer.echo(f"report written to {out}")
        failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
        if failed:
            raise user_error(f"scenario(s) did not finish: {', '.join(failed)} (see {out})")
