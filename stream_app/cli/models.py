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
    from models.deep.registry import Registry
    from models.deep.train import TrainConfig, TrainResult


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


def _train_once(registry: Registry, events: list[Interaction], cfg: TrainConfig, device: str | None,
                progress: bool, warm_epochs: int) -> TrainResult:
    """One training run: warm-started from the serving version when asked and it can be read."""
    from models.deep.registry import ArtifactError
    from models.deep.train import train as train_model
    from models.deep.warm import Start, warm_train

    current = registry.current() if warm_epochs else None
    if current is not None:
        try:
            start = Start.of_artifact(registry.load(current), registry.manifest(current))
        except ArtifactError as exc:
            typer.echo(f"cannot warm-start from {current} ({exc}); training from scratch", err=True)
        else:
            return warm_train(events, start, warm_epochs, device, progress, score=True)
    return train_model(events, cfg, device=device, progress=progress, fresh_after=registry.data_end())


def train(
    input_file: Path | None = typer.Option(None, "--input", help="train on this file instead of the events topic"),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="format of --input"),
    every: str | None = typer.Option(None, "--every", help="retrain periodically, e.g. 15m (Ctrl-C stops)"),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1,
        help="the most epochs; early stopping usually ends sooner [default: by data size, "
             "ceil(2M / training interactions) within 20..200]"),
    patience: int = typer.Option(5, "--patience", min=0,
                                 help="stop after this many epochs without a better validation NDCG@10 "
                                      "(each user's last item held out); 0 = train every epoch"),
    dropout: float | None = typer.Option(
        None, "--dropout", min=0.0, max=0.95,
        help="[default: by data size: 0.5 under 100k training interactions, 0.3 under 1M, else 0.2]"),
    weight_decay: float | None = typer.Option(
        None, "--weight-decay", min=0.0,
        help="AdamW weight decay [default: by data size: 0.1 under 100k interactions, 0.05 under 1M, else 0.01]"),
    dim: int = typer.Option(64, "--dim", min=8),
    max_len: int = typer.Option(50, "--max-len", min=2,
                                help="positions read per user (the start token + the latest max-len - 1 items); "
                                     "workers serve the same history unless STREAMREC_DEEP_HISTORY is set"),
    full_softmax_max_items: int = typer.Option(
        50_000, "--full-softmax-max-items", min=1,
        help="catalogues up to this size train with the full softmax; larger ones with a sampled softmax "
             "with logQ correction"),
    negatives: int = typer.Option(0, "--negatives", min=0,
                                  help="negatives per batch of the sampled softmax (0 = 1024 when sampled)"),
    pool_coverage: float = typer.Option(
        0.95, "--pool-coverage", min=0.01, max=1.0,
        help="the serving pool: the fewest most frequent items covering this share of training interactions"),
    max_events: int = typer.Option(0, "--max-events", help="train on the newest N events (0 = all)", min=0),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when present)"),
    tolerance: float = typer.Option(
        0.0, "--tolerance", min=0.0,
        help="NDCG@10 a candidate may lose beyond the noise of the shared fresh holdout and still be promoted"),
    gate_min_users: int = typer.Option(200, "--gate-min-users", min=1,
                                       help="fewest users in the fresh holdout for the gate to replace the "
                                            "serving model"),
    warm_epochs: int = typer.Option(
        0, "--warm-epochs", min=0,
        help="continue the serving model instead of training from scratch: its item table grows for new "
             "items and it trains this many epochs on the events since its data (0 = from scratch)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train the deep model to convergence and promote it if it is not worse than the serving one.

    Early stopping on a per-user validation split (each user's last item), then a refit on every
    event for the epochs it found. The candidate and the serving model are scored on the same
    fresh holdout (the newest 10% of events, and only events newer than the serving model's
    data); the candidate is promoted unless it is worse beyond that holdout's noise (a paired
    per-user bootstrap) or the holdout has fewer than --gate-min-users users. The decision and
    both scores go into the manifest (`streamrec model list`).

    With --warm-epochs N (and a serving model that can be read) a retraining continues the
    serving model: new items start from their co-occurrence neighbours' vectors and it trains
    N epochs on the users active since the serving model's data, at a fraction of the cost;
    the gate is the same.
    """
    import orjson

    from models.deep.registry import Registry
    from models.deep.train import TrainConfig, check_device

    check_format(fmt)
    period = parse_duration(every) if every else None
    if device and not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise typer.BadParameter(f"{device!r} is not cpu or cuda[:N]", param_hint="--device")
    try:
        check_device(device)
        cfg = TrainConfig(epochs=epochs, dim=dim, patience=patience, dropout=dropout, weight_decay=weight_decay,
                          max_len=max_len, full_softmax_max_items=full_softmax_max_items, negatives=negatives,
                          pool_coverage=pool_coverage)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    s = get_settings()
    registry = Registry(s.registry_path, s.signing_key)
    while True:
        events = _training_events(s, input_file, fmt, max_events, progress)
        t0 = time.perf_counter()
        result = None
        if len(events) >= 10:
            try:
                result = _train_once(registry, events, cfg, device, progress, warm_epochs)
            except ValueError as exc:  # e.g. nothing newer than the serving model's data
                if period is None:
                    raise UserError(str(exc)) from None
                typer.echo(f"not trained: {exc}; next try in {period:.0f}s", err=True)
        elif period is None:
            raise UserError(f"only {len(events)} events to train on; produce some first")
        else:
            typer.echo(f"only {len(events)} events so far; next try in {period:.0f}s", err=True)
        if result is not None:
            version, promoted = registry.save(result, promote_if_better=True, tolerance=tolerance,
                                              min_users=gate_min_users)
            typer.echo(orjson.dumps({
                "version": version, "promoted": promoted, "events": len(events), "device": result.device,
                "gate": registry.manifest(version).get("gate"), "metrics": result.metrics,
                "serving": result.serving, "epoch_seconds": [round(x, 3) for x in result.epoch_seconds],
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
        gate = r.get("gate") or {}
        verdict = "promoted" if gate.get("promote") else "kept out"
        typer.echo(f"{mark} {r.get('version')}  ndcg@10={_num(m.get('ndcg@10'))}  "
                   f"hr@10={_num(m.get('hr@10'))}  items={_num(m.get('items'), 0)}"
                   + (f"  gate: {verdict} ({gate.get('reason', '')})" if gate else ""))


def _num(value: object, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "?"


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
