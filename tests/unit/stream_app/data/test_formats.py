"""The one table of dataset formats: every format has a reader and a mapping, every command takes
the same list, and a row becomes the same event type whichever path reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from schemas import EVENT_TYPES
from stream_app.cli.common import FORMAT_HELP, check_format
from stream_app.cli.main import build_app
from stream_app.data import formats, sources
from stream_app.data.eventlog import read_file
from stream_app.data.formats import (
    FORMAT_TABLE,
    FORMATS,
    OTTO_TYPES,
    RETAILROCKET_TYPES,
    TAOBAO_TYPES,
    BadRow,
    UnknownFormat,
    get_format,
    movielens_type,
)
from stream_app.data.sources import read_events

LABELS = {"retailrocket": RETAILROCKET_TYPES, "otto": OTTO_TYPES, "taobao": TAOBAO_TYPES}
RATINGS = [r / 2 for r in range(1, 11)]  # 0.5 .. 5.0, every MovieLens star value


def test_formats_are_the_table_in_the_contract_order():
    assert FORMATS == ("jsonl", "movielens", "retailrocket", "otto", "taobao")
    assert tuple(FORMAT_TABLE) == FORMATS
    assert sources.FORMATS is FORMATS  # the readers' name for it is the same object, not a copy


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_a_reader_and_a_mapping(fmt):
    f = get_format(fmt)
    assert f.name == fmt and f.file
    assert callable(f.parse) and callable(f.event_type)
    with pytest.raises(BadRow):
        f.event_type("no-such-type")


@pytest.mark.parametrize("fmt", sorted(LABELS))
def test_label_mappings_reach_only_contract_types_and_are_documented(fmt):
    table = LABELS[fmt]
    assert set(table.values()) <= set(EVENT_TYPES)
    for raw, kind in table.items():
        assert get_format(fmt).event_type(raw) == kind
        assert f"{raw} -> {kind}" in (formats.__doc__ or ""), f"{fmt}: {raw} -> {kind} is not in the table"


def test_jsonl_maps_contract_types_to_themselves():
    assert [get_format("jsonl").event_type(t) for t in EVENT_TYPES] == list(EVENT_TYPES)


def test_unknown_format_names_every_format():
    with pytest.raises(UnknownFormat) as err:
        get_format("parquet")
    assert isinstance(err.value, ValueError)
    for fmt in FORMATS:
        assert fmt in str(err.value)


def test_the_cli_takes_exactly_the_table():
    assert " | ".join(FORMATS) == FORMAT_HELP
    for fmt in FORMATS:
        assert check_format(fmt) == fmt
    with pytest.raises(typer.BadParameter, match="unknown format"):
        check_format("csv")


def test_produce_train_eval_and_demo_take_the_same_format_option():
    group = typer.main.get_command(build_app())
    ctx = typer.Context(group)
    for name in ("produce", "train", "eval", "demo"):
        cmd = group.get_command(ctx, name)
        (opt,) = [p for p in cmd.params if p.name == "fmt"]
        assert opt.opts == ["--format", "-f"], name
    for name in ("produce", "eval"):
        cmd = group.get_command(ctx, name)
        (opt,) = [p for p in cmd.params if p.name == "fmt"]
        assert opt.help == FORMAT_HELP, name


def _ratings_file(tmp_path: Path) -> Path:
    path = tmp_path / "ratings.csv"
    rows = "".join(f"{u},{100 + u},{r},{1_000 + u}\n" for u, r in enumerate(RATINGS))
    path.write_text("userId,movieId,rating,timestamp\n" + rows)
    return path


def test_a_movielens_row_is_the_same_event_through_every_path(tmp_path):
    path = _ratings_file(tmp_path)
    expected = [movielens_type(r) for r in RATINGS]
    assert expected == [get_format("movielens").event_type(str(r)) for r in RATINGS]
    produced = [e["type"] for e in read_events(path, "movielens", errors="keep")]  # streamrec produce, demo
    trained = [i.type for i in read_file(path, "movielens")]  # streamrec train --input, streamrec eval
    assert produced == trained == expected
    assert expected == ["view"] * 5 + ["click", "click", "add_to_cart", "purchase", "purchase"]



def test_every_format_declares_what_an_evaluation_excludes_and_the_table_says_why():
    flags = {fmt: get_format(fmt).exclude_seen for fmt in FORMATS}
    assert all(isinstance(v, bool) for v in flags.values())
    assert flags["movielens"] is True  # nobody rates a film twice: a rated film is never the next rating
    assert not any(v for fmt, v in flags.items() if fmt != "movielens")  # shop logs repeat items
    doc = formats.__doc__ or ""
    assert "exclude_seen" in doc and "shuffle_ties" in doc
