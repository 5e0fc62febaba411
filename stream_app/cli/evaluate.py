"""``streamrec eval``: prequential evaluation of every system on a dataset or a synthetic stream.

The replay itself is :func:`stream_app.ops.evaluation.run_eval`, once per seed (``--seeds``); a
dataset is read through the same formats as ``streamrec produce`` (:mod:`stream_app.data.formats`),
whose ``exclude_seen`` says whether already-seen items are excluded too (``--exclude-seen`` /
``--no-exclude-seen`` override it).

``--synthetic N`` evaluates on N events of :func:`stream_app.data.synthetic.generate` (seed 11;
its knobs as options: ``--items``, ``--users``, ``--p-related``, ``--p-taste``,
``--new-item-rate``, ``--no-funnel``) and adds the ``oracle`` system, which ranks by the
generator's own next-item probabilities; the JSON's ``synthetic`` holds the knobs used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stream_app.cli.common import FORMAT_HELP, check_format, require_file
from stream_app.cli.errors import UserError

if TYPE_CHECKING:
    from models.base import Interaction
    from stream_app.data.synthetic_law import Truth

_KNOWN_NAMES = ("ratings.csv", "events.csv", "train.jsonl")


def dataset_name(path: Path) -> str:
    """How a dataset is named in the report: its folder too when the file name says little.

    >>> dataset_name(Path("data/movielens-latest-small/ratings.csv")), dataset_name(Path("x/my.jsonl"))
    ('movielens-latest-small/ratings.csv', 'my.jsonl')
    """
    return f"{path.parent.name}/{path.name}" if path.name in _KNOWN_NAMES else path.name


SYNTHETIC_SEED = 11


def synthetic_knobs(n: int, items: int = 0, users: int = 0, p_related: float | None = None,
                    p_taste: float | None = None, new_item_rate: float | None = None,
                    funnel: bool = True) -> dict[str, Any]:
    """The generator's arguments for ``--synthetic N``: a catalogue of ``N/10`` items and ``N/25``
    users unless given, the generator's defaults for every knob left out.

    >>> synthetic_knobs(200_000)
    {'n_users': 8000, 'n_items': 20000, 'seed': 11}
    >>> synthetic_knobs(1000, items=50, p_related=1.0, funnel=False)["funnel"] is None
    True
    """
    knobs: dict[str, Any] = {"n_users": users or max(100, n // 25), "n_items": items or max(500, n // 10),
                             "seed": SYNTHETIC_SEED}
    for name, value in (("p_related", p_related), ("p_taste", p_taste), ("new_item_rate", new_item_rate)):
        if value is not None:
            knobs[name] = value
    if not funnel:
        knobs["funnel"] = None
    return knobs


def synthetic_events(n: int, knobs: dict[str, Any]) -> tuple[list[Interaction], Truth]:
    """``n`` synthetic events as the models see them, and the generator's record of its own law."""
    from models.base import Interaction
    from stream_app.data.synthetic import generate
    from stream_app.data.synthetic_law import Truth

    truth = Truth()
    events = [Interaction(e["user_id"], e["item_id"], e["type"], e["ts"])
              for e in generate(n, **knobs, truth=truth)]
    return events, truth


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
    items: int = typer.Option(0, "--items", help="with --synthetic: initial catalogue size (0 = N/10, at least 500)",
                              min=0),
    users: int = typer.Option(0, "--users", help="with --synthetic: users (0 = N/25, at least 100)", min=0),
    p_related: float | None = typer.Option(None, "--p-related", min=0.0, max=1.0,
                                           help="with --synthetic: chance the next view follows the item's sequence"),
    p_taste: float | None = typer.Option(None, "--p-taste", min=0.0, max=1.0,
                                         help="with --synthetic: chance it is drawn from the session's taste"),
    new_item_rate: float | None = typer.Option(None, "--new-item-rate", min=0.0, max=1.0,
                                               help="with --synthetic: chance a taste draw is a new item"),
    funnel: bool = typer.Option(True, "--funnel/--no-funnel", help="with --synthetic: clicks, carts, purchases"),
    oracle: bool = typer.Option(True, "--oracle/--no-oracle",
                                help="with --synthetic: also judge the generator's own ranking (the ceiling)"),
) -> None:
    """Prequential evaluation of popularity, cooccurrence, online, deep and hybrid, side by side, over several seeds."""
    from stream_app.ops.evaluation import markdown_table, run_eval, write_result

    if (dataset is None) == (synthetic == 0):
        raise typer.BadParameter("give either --dataset PATH --format FMT or --synthetic N", param_hint="--dataset")
    make_oracle = None
    knobs: dict[str, Any] | None = None
    if dataset is None:
        knobs = synthetic_knobs(synthetic, items, users, p_related, p_taste, new_item_rate, funnel)
        try:
            events, truth = synthetic_events(synthetic, knobs)
        except ValueError as exc:  # knobs that do not fit together, e.g. p_related + p_taste > 1
            raise typer.BadParameter(str(exc), param_hint="--synthetic") from None
        name, seen = f"synthetic ({synthetic} events)", False
        if oracle:
            from models.evaluation.oracle import Oracle

            def make_oracle() -> Oracle:
                return Oracle(truth.law())
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
                          seeds=seeds, exclude_seen=seen if exclude_seen is None else exclude_seen,
                          oracle=make_oracle)
    except ValueError as exc:  # EvaluationError, or training that cannot use these events
        raise UserError(str(exc)) from None
    if knobs is not None:
        result["synthetic"] = {**knobs, "events": synthetic}
    write_result(result, out)
    table = markdown_table(result)
    if markdown is not None:
        with open(markdown, "a") as fh:
            fh.write("\n" + table)
    typer.echo(table)
