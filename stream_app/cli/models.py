"""``streamrec train`` and ``streamrec model list|promote|rollback``: the deep model and its registry."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stream_app.cli.common import check_format, require_file
from stream_app.cli.errors import UserError
from stream_app.settings import Settings, get_settings

if TYPE_CHECKING:
    from models.base import Interaction


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or plain seconds -> seconds.

    >>> parse_duration("15m"), parse_duration("2h"), parse_duration("45")
    (900.0, 7200.0, 45.0)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 2h or 1d", param_hint="--every")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _training_events(s: Settings, input_file: Path | None, fmt: str, max_events: int,
                     progress: bool) -> list[Interaction]:
    """The newest ``max_events`` events (0 = all) of ``input_file``, or of the events topic."""
    if input_file is not None:
        from stream_app.data.eventlog import read_file

        events = read_file(require_file(input_file), fmt)
        return events[-max_events:] if max_events else events
    from stream_app.data.eventlog import read_topic

    return read_topic(s.kafka_connection(), s.events_topic, max_events, progress)


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
    import orjson

    from models.deep.registry import Registry
    from models.deep.train import TrainConfig, check_device
    from models.deep.train import train as train_model

    check_format(fmt)
    period = parse_duration(every) if every else None
    if device and not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise typer.BadParameter(f"{device!r} is not cpu or cuda[:N]", param_hint="--device")
    try:
        check_device(device)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    s = get_settings()
    registry = Registry(s.registry_path, s.signing_key)
    while True:
        events = _training_events(s, input_file, fmt, max_events, progress)
        if len(events) < 10:
            if period is None:
                raise UserError(f"only {len(events)} events to train on; produce some first")
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


def model_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """List model versions (the one in service is marked *)."""
    import orjson

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


def model_promote(version: str = typer.Argument(..., help="version to put in service")) -> None:
    """Put a version in service (workers swap it in within seconds)."""
    from models.deep.registry import Registry

    Registry(get_settings().registry_path).promote(version)
    typer.echo(f"promoted {version}")


def model_rollback() -> None:
    """Go back to the previously promoted version."""
    from models.deep.registry import Registry

    version = Registry(get_settings().registry_path).rollback()
    typer.echo(f"rolled back to {version}")
