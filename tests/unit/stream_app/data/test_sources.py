"""Dataset readers: the real shared data, a Taobao fixture, and the error paths."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from schemas import event_from_dict
from stream_app.data.sources import (
    FORMATS,
    Rejected,
    SourceError,
    count_types,
    iter_events,
    movielens_type,
    read_events,
)
from tests.paths import shared_data_dir

DATA = shared_data_dir()


def _need(rel: str) -> Path:
    path = DATA / rel
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is absent (set STREAMREC_SHARED_DATA to its folder)")
    return path


def _check_common(events: list[dict], fmt: str) -> None:
    ts = [e["ts"] for e in events]
    assert ts == sorted(ts), "events must be sorted by ts"
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids), "event ids must be unique"
    assert all(i.startswith(f"{fmt}-") for i in ids)
    for e in events:
        event_from_dict(e)  # raises InvalidEvent if the reader produced a bad event


def test_movielens_matches_source_statistics():
    events = read_events(_need("movielens-latest-small/ratings.csv"), "movielens")
    assert len(events) == 100_836
    assert len({e["user_id"] for e in events}) == 610
    assert len({e["item_id"] for e in events}) == 9_724
    # Ratings per SOURCE.md: >=4.5 (13,211 + 8,551), 4.0, 3.0-3.5 (20,047 + 13,136), the rest.
    assert count_types(events) == {
        "purchase": 21_762,
        "add_to_cart": 26_818,
        "click": 33_183,
        "view": 19_073,
    }
    assert events[0]["ts"] == 828_124_615.0  # 1996-03-29 18:36:55 UTC
    assert events[-1]["ts"] == 1_537_799_250.0  # 2018-09-24 14:27:30 UTC
    _check_common(events, "movielens")


def test_movielens_type_mapping_edges():
    assert [movielens_type(r) for r in (5.0, 4.5, 4.0, 3.5, 3.0, 2.5, 0.5)] == [
        "purchase", "purchase", "add_to_cart", "click", "click", "view", "view"
    ]


def test_retailrocket_matches_source_statistics():
    events = read_events(_need("retailrocket-sample/events.csv"), "retailrocket")
    assert len(events) == 2_771
    assert count_types(events) == {"view": 2_695, "add_to_cart": 62, "purchase": 14}
    assert len({e["user_id"] for e in events}) == 1_500
    assert len({e["item_id"] for e in events}) == 2_127
    assert events[0]["ts"] == pytest.approx(1_430_637_875.596)  # ms -> s
    assert events[-1]["ts"] == pytest.approx(1_442_541_735.449)
    assert len({e["user_id"] for e in events if e["type"] == "add_to_cart"}) == 39
    _check_common(events, "retailrocket")


def test_otto_matches_source_statistics():
    events = read_events(_need("otto-sample/train.jsonl"), "otto")
    assert len(events) == 862
    assert count_types(events) == {"click": 800, "add_to_cart": 52, "purchase": 10}
    assert len({e["user_id"] for e in events}) == 20
    assert len({e["item_id"] for e in events}) == 527
    assert all(e["session_id"] == e["user_id"] for e in events)
    assert {"0", "9", "12899769", "12899778"} <= {e["user_id"] for e in events}
    assert events[0]["ts"] == pytest.approx(1_659_304_800.025)
    assert events[-1]["ts"] == pytest.approx(1_661_723_997.885)
    _check_common(events, "otto")


def test_otto_merge_keeps_session_order_on_equal_ts():
    events = read_events(_need("otto-sample/train.jsonl"), "otto")
    by_session: dict[str, list[str]] = {}
    for e in events:
        by_session.setdefault(e["user_id"], []).append(e["event_id"])
    for ids in by_session.values():
        idx = [int(i.rsplit("-", 1)[1]) for i in ids]
        assert idx == sorted(idx), "a session's events must keep their file order"


def test_replay_gives_same_ids():
    path = _need("retailrocket-sample/events.csv")
    assert read_events(path, "retailrocket") == read_events(path, "retailrocket")


def test_taobao_fixture(tmp_path):
    path = tmp_path / "UserBehavior.csv"
    path.write_text(
        "1,2268318,2520377,pv,1511544070\n"
        "1,2333346,2520771,fav,1511561733\n"
        "\n"
        "100,4576651,2920476,cart,1511600000\n"
        "100,2268318,2520377,buy,1511500000\n"
    )
    events = read_events(path, "taobao")
    assert [(e["user_id"], e["item_id"], e["type"], e["ts"]) for e in events] == [
        ("100", "2268318", "purchase", 1_511_500_000.0),
        ("1", "2268318", "view", 1_511_544_070.0),
        ("1", "2333346", "click", 1_511_561_733.0),
        ("100", "4576651", "add_to_cart", 1_511_600_000.0),
    ]
    assert [e["event_id"] for e in events] == ["taobao-5", "taobao-1", "taobao-2", "taobao-4"]
    _check_common(events, "taobao")


def test_taobao_header_and_gzip(tmp_path):
    path = tmp_path / "UserBehavior.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("user,item,category,behavior,ts\n7,8,9,pv,1511544070\n")
    events = read_events(path, "taobao")
    assert [(e["user_id"], e["type"], e["event_id"]) for e in events] == [("7", "view", "taobao-2")]


def test_unknown_format_lists_formats(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n")
    with pytest.raises(ValueError) as err:
        read_events(path, "parquet")
    for fmt in FORMATS:
        assert fmt in str(err.value)


def test_missing_file_is_clear(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=r"movielens input file not found: .*nope\.csv"):
        iter_events(missing, "movielens")  # raised at call time, not at first next()


@pytest.mark.parametrize(
    "fmt,text,line,reason",
    [
        ("taobao", "1,2,3,pv,1511544070\n1,2,3,like,1511544071\n", 2, "unknown behavior 'like'"),
        ("taobao", "1,2,3,pv\n", 1, "expected at least 5"),
        ("taobao", "1,2,3,pv,soon\n", 1, "timestamp 'soon' is not a number"),
        ("movielens", "userId,movieId,rating,timestamp\n1,2,4.0,9\n1,2,x,9\n", 3, "rating 'x'"),
        ("movielens", "user,movie,stars,time\n1,2,4.0,9\n", 1, "lacks column"),
        ("retailrocket", "timestamp,visitorid,event,itemid,transactionid\n1,2,buy,3,\n", 2, "unknown event 'buy'"),
        ("retailrocket", "timestamp,visitorid,event,itemid,transactionid\n1,,view,3,\n", 2, "empty visitorid"),
        ("otto", '{"session": 1, "events": [{"aid": 5, "ts": 1, "type": "likes"}]}\n', 1, "unknown type"),
        ("otto", '{"session": 1}\n', 1, "expected"),
        ("jsonl", '{"event_id": "e", "user_id": "u", "item_id": "i", "type": "buy", "ts": 1}\n', 1, "invalid event"),
        ("jsonl", "not json\n", 1, "not valid JSON"),
        ("jsonl", "[" * 100_000 + "]" * 100_000 + "\n", 1, "nested too deeply"),
        ("otto", '{"session": 1, "events": [{"aid": 5, "ts": 1' + "0" * 400 + ', "type": "clicks"}]}\n', 1,
         "is not a finite number"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, fmt, text, line, reason):
    path = tmp_path / "input.txt"
    path.write_text(text)
    with pytest.raises(SourceError) as err:
        read_events(path, fmt)
    assert err.value.line_no == line
    assert f"{path}:{line}:" in str(err.value)
    assert reason in str(err.value)


def test_jsonl_keep_returns_rejected_rows_in_place(tmp_path):
    good = [
        {"event_id": "e-1", "user_id": "u-1", "item_id": "i-1", "type": "view", "ts": 3.0, "extra": 1},
        {"event_id": "e-2", "user_id": "u-1", "item_id": "i-2", "type": "click", "ts": 1.0, "price": 2.5},
    ]
    lines = [json.dumps(good[0]), '{"event_id": "e-x"}', "[1, 2]", json.dumps(good[1])]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = read_events(path, "jsonl", errors="keep")
    assert len(out) == 4
    # e-2 (ts 1) first; the rejected rows keep the time of the valid row before them (ts 3).
    assert out[0] == good[1]
    assert out[1] == good[0]  # passed through unchanged, unknown field included
    rejected = [r for r in out if isinstance(r, Rejected)]
    assert [r.line_no for r in rejected] == [2, 3]
    assert rejected[0].raw == b'{"event_id": "e-x"}'
    assert "user_id" in rejected[0].reason
    assert count_types(out) == Counter({"view": 1, "click": 1, "rejected": 2})
    with pytest.raises(SourceError, match=r"events\.jsonl:2:"):
        read_events(path, "jsonl")


def test_bad_header_raises_even_with_keep(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(SourceError, match="lacks column"):
        read_events(path, "movielens", errors="keep")
