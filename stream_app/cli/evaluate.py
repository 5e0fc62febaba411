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

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stream_app.cli.common import FORMAT_HELP, check_format, require_file
from stream_app.cli.errors import UserError

if TYPE_CHECKING:
    from models.base import Interaction
    from models.filters.rules import ListFilter
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


def load_filter(rules: Path | None, catalogue: Path | None, truth: Truth | None) -> Callable[[], ListFilter] | None:
    """What builds the worker's list filter for each replay: the rules file and the item
    catalogue (``--catalogue``, or the generator's tastes as categories); None without either."""
    from models.filters.catalogue import ItemCatalogue
    from models.filters.rules import ListFilter, Rules, RulesError
    from schemas.items import Item, decode_item

    if rules is None and catalogue is None:
        return None
    try:
        ruled = Rules.from_file(require_file(rules)) if rules is not None else Rules()
    except RulesError as exc:
        raise UserError(str(exc)) from None
    items: list[Item | str] = []  # an item, or the id of a tombstone
    if catalogue is not None:
        from stream_app.cli.produce import read_items

        for n, (key, value, valid) in enumerate(read_items(require_file(catalogue)), 1):
            if not valid:
                raise UserError(f"{catalogue}: record {n} is not a valid item record (see schemas/items.schema.json)")
            if value is None:
                items.append((key or b"").decode())
            else:
                item = decode_item(value, key)
                assert item is not None
                items.append(item)
    elif truth is not None and rules is not None:
        items = [Item(item, category=cat) for item, cat in truth.categories().items()]

    def build() -> ListFilter:
        cat = ItemCatalogue()
        for it in items:
            if isinstance(it, str):
                cat.remove(it)
            else:
                cat.update(it)
        return ListFilter(cat, ruled)

    return build


def eval_cmd(
    out: Path = typer.Option(..., "--out", help="where to write the JSON result"),
    dataset: Path | None = typer.Option(None, "--dataset", help="dataset file (ratings.csv, events.csv, ...)"),
    fmt: str = typer.Option("jsonl", "--format", "-f", help=FORMAT_HELP),
    synthetic: int = typer.Option(0, "--synthetic", help="evaluate on N synthetic events instead of a file", min=0),
    retrain_every: int = typer.Option(0, "--retrain-every", help="events between deep retrainings (0 = a fifth)",
                                      min=0),
    epochs: int = typer.Option(5, "--epochs", help="epochs per retraining from scratch", min=1),
    first_train: int = typer.Option(0, "--first-train", min=0,
                                    help="events before the first deep model, where judging starts (0 = a fifth)"),
    warm_epochs: int = typer.Option(0, "--warm-epochs", min=0,
                                    help="warm-start every retraining after the first from the serving model, "
                                         "this many epochs on the recent events (0 = from scratch)"),
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
    rules: Path | None = typer.Option(None, "--rules", help="apply this rules file (as STREAMREC_RULES_FILE) to "
                                      "every list, as the worker does"),
    catalogue: Path | None = typer.Option(None, "--catalogue", help="item catalogue (items JSONL, as `streamrec "
                                          "produce --format items-jsonl` reads) for the rules; with --synthetic "
                                          "and --rules the generator's tastes are the categories"),
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
    list_filter = load_filter(rules, catalogue, truth if dataset is None else None)
    if limit:
        events = events[:limit]  # the first N in time order; each seed then shuffles their ties
    try:
        result = run_eval(events, name, retrain_every or None, epochs, device, half_life or None, every, progress,
                          seeds=seeds, exclude_seen=seen if exclude_seen is None else exclude_seen,
                          oracle=make_oracle, list_filter=list_filter, first_train=first_train or None,
                          warm_epochs=warm_epochs)
    except ValueError as exc:  # EvaluationError, or training that cannot use these events
        raise UserError(str(exc)) from None
    if knobs is not None:
        result["synthetic"] = {**knobs, "events": synthetic}
    if list_filter is not None:
        f = list_filter()
        result["rules"] = {"file": str(rules) if rules else None, **f.rules.__dict__,
                           "exclude_categories": sorted(f.rules.exclude_categories),
                           "exclude_labels": sorted(f.rules.exclude_labels),
                           "catalogue": str(catalogue) if catalogue else "the generator's tastes as categories",
                           "catalogued_items": len(f.catalogue)}
    write_result(result, out)
    table = markdown_table(result)
    if markdown is not None:
        with open(markdown, "a") as fh:
            fh.write("\n" + table)
    typer.echo(table)
