"""``streamrec eval``: prequential evaluation of every system on a dataset or a synthetic stream.

The replay itself is :func:`stream_app.ops.evaluation.run_eval`, once per seed (``--seeds``); a
dataset is read through the same formats as ``streamrec produce`` (:mod:`stream_app.data.formats`),
whose ``exclude_seen`` says whether already-seen items are excluded too (``--exclude-seen`` /
``--no-exclude-seen`` override it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stream_app.cli.common import FORMAT_HELP, check_format, require_file
from stream_app.cli.errors import UserError

if TYPE_CHECKING:
    from models.base import Interaction

_KNOWN_NAMES = ("ratings.csv", "events.csv", "train.jsonl")


def dataset_name(path: Path) -> str:
    """How a dataset is named in the report: its folder too when the file name says little.

    >>> dataset_name(Path("data/movielens-latest-small/ratings.csv")), dataset_name(Path("x/my.jsonl"))
    ('movielens-latest-small/ratings.csv', 'my.jsonl')
    """
    return f"{path.parent.name}/{path.name}" if path.name in _KNOWN_NAMES else path.name


def _synthetic_events(n: int) -> list[Interaction]:
    from models.base import Interaction
    from stream_app.data.synthetic import generate

    return [Interaction(e["user_id"], e["item_id"], e["type"], e["ts"])
            for e in generate(n, n_users=max(100, n // 25), n_items=max(500, n // 10), seed=11)]


def eval_cmd(
    out: Path = typer.Option(..., "--out", help="where to write the JSON result"),
    dataset: Path | None = typer.Option(None, "--dataset", help="dataset file (ratings.csv, events.csv, ...)"),
    fmt: str = typer.Option("jsonl", "--format", "-f", help=FORMAT_HELP),
    synthetic: int = typer.Option(0, "--synthetic", help="evaluate on N synthetic events instead of a file", min=0),
    retrain_every: int = typer.Option(0, "--retrain-every", help="events between deep retrainings (0 = a fifth)",
                                      min=0),
    epochs: int = typer.Option(5, "--epochs", help="epochs per retraining", min=1),
    limit: int = typer.Option(0, "--limit", help="use only the first N events in time order (0 = all)", min=0),
    every: int = typer.Option(1, "--every", help="score every n-th event (all are learned)", min=1),
    half_life: float = typer.Option(0.0, "--half-life", help="popularity half-life in seconds (0 = no decay)", min=0),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda for retraining"),
    seeds: int = typer.Option(3, "--seeds", help="replays, one per seed (ties reshuffled, models reseeded)", min=1),
    exclude_seen: bool | None = typer.Option(
        None, "--exclude-seen/--no-exclude-seen",
        help="also exclude every item the user touched before (default: as the format says; movielens does)"),
    markdown: Path | None = typer.Option(None, "--markdown", help="also append a Markdown table here"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Prequential evaluation of popularity, cooccurrence, online, deep and hybrid, side by side, over several seeds."""
    from stream_app.ops.evaluation import markdown_table, run_eval, write_result

    if (dataset is None) == (synthetic == 0):
        raise typer.BadParameter("give either --dataset PATH --format FMT or --synthetic N", param_hint="--dataset")
    if dataset is None:
        events, name, seen = _synthetic_events(synthetic), f"synthetic ({synthetic} events)", False
    else:
        from stream_app.data.eventlog import read_file
        from stream_app.data.formats import get_format

        check_format(fmt)
        events, name = read_file(require_file(dataset), fmt), dataset_name(dataset)
        seen = get_format(fmt).exclude_seen
    if limit:
        events = events[:limit]  # the first N in time order; each seed then shuffles their ties
    try:
        result = run_eval(events, name, retrain_every or None, epochs, device, half_life or None, every, progress,
                          seeds=seeds, exclude_seen=seen if exclude_seen is None else exclude_seen)
    except ValueError as exc:  # EvaluationError, or training that cannot use these events
        raise UserError(str(exc)) from None
    write_result(result, out)
    table = markdown_table(result)
    if markdown is not None:
        with open(markdown, "a") as fh:
            fh.write("\n" + table)
    typer.echo(table)
