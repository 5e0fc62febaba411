"""Streaming a file in time order: the same rows in the same order as read_events, bounded memory,
and no temporary file left behind, whatever happens."""

from __future__ import annotations

import gc
import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from stream_app.data import ordering
from stream_app.data.formats import UnknownFormat
from stream_app.data.ordering import FileChanged, time_ordered
from stream_app.data.sources import Rejected, SourceError, iter_events, read_events

T0 = 1_511_539_200


def _taobao(rng: random.Random, ts: int) -> str:
    return f"{rng.randrange(9)},{rng.randrange(50)},{rng.randrange(5)},{rng.choice(['pv', 'fav', 'cart', 'buy'])},{ts}"


def _line(fmt: str, rng: random.Random, ts: int, spread: int = 3) -> str:
    """One valid row of ``fmt`` at time ``ts`` (seconds, few distinct values: many ties); with
    ``spread`` > 1 an OTTO session's events spread over that many seconds, a jsonl event may be at ts + 0.5."""
    if fmt == "taobao":
        return _taobao(rng, T0 + ts)
    if fmt == "movielens":
        return f"{rng.randrange(9)},{rng.randrange(50)},{rng.choice([1.0, 3.5, 4.0, 5.0])},{T0 + ts}"
    if fmt == "retailrocket":
        return f"{(T0 + ts) * 1000},{rng.randrange(9)},{rng.choice(['view', 'addtocart', 'transaction'])},{rng.randrange(50)},"
    if fmt == "otto":
        events = [{"aid": rng.randrange(50), "ts": (T0 + ts + rng.randrange(spread)) * 1000,
                   "type": rng.choice(["clicks", "carts", "orders"])} for _ in range(rng.randrange(1, 4))]
        return json.dumps({"session": rng.randrange(9), "events": events})
    event = {"event_id": f"e-{rng.random()}", "user_id": f"u-{rng.randrange(9)}", "item_id": f"i-{rng.randrange(50)}",
             "type": rng.choice(["view", "click", "add_to_cart", "purchase"]), "ts": T0 + ts + rng.choice([0, 0.5 if spread > 1 else 0])}
    if rng.random() < 0.3:
        event["price"] = round(rng.uniform(1, 50), 2)
    if rng.random() < 0.2:
        event["extra"] = {"nested": [1, None, "x"]}
    return json.dumps(event)


BAD = {
    "taobao": ["1,2,3,like,5", "1,2,3", "1,2,3,pv,soon"],
    "movielens": ["1,2,x,9", "1,2"],
    "retailrocket": ["1,2,buy,3,", "x,2,view,3,"],
    "otto": ['{"session": 1}', "not json"],
    "jsonl": ["not json", '{"event_id": "e-x"}', "[1, 2]"],
}
HEADER = {"movielens": "userId,movieId,rating,timestamp", "retailrocket": "timestamp,visitorid,event,itemid,transactionid"}
FMTS = ("taobao", "movielens", "retailrocket", "otto", "jsonl")


def write(path: Path, fmt: str, rows: int, seed: int = 0, ordered: bool = False, bad: float = 0.08) -> Path:
    """A file of ``rows`` rows with ties, malformed rows (one first) and blank lines; ``ordered``: by time."""
    rng = random.Random(seed)
    times = sorted(rng.randrange(30) for _ in range(rows)) if ordered else [rng.randrange(30) for _ in range(rows)]
    lines = [HEADER[fmt]] if fmt in HEADER else []
    if bad:
        lines.append(rng.choice(BAD[fmt]))  # a malformed row before any valid one: it sorts first
    for ts in times:
        roll = rng.random()
        lines.append(rng.choice(BAD[fmt]) if roll < bad else "" if roll < bad + 0.01 else _line(fmt, rng, ts, 1 if ordered else 3))
    path.write_text("\n".join(lines) + "\n")
    return path


def listing(spill: Path) -> list[Path]:
    return sorted(spill.rglob("*"))


@pytest.fixture
def spill(tmp_path: Path) -> Path:
    folder = tmp_path / "spill"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("chunk_rows,fan_in", [(1, 2), (3, 2), (7, 3), (40, 64), (10**6, 64)])
def test_same_rows_in_the_same_order_as_read_events(tmp_path, spill, fmt, chunk_rows, fan_in):
    path = write(tmp_path / f"in.{fmt}", fmt, 400, seed=chunk_rows)
    expected = read_events(path, fmt, errors="keep")
    assert sum(isinstance(r, Rejected) for r in expected) > 10
    assert len({r["ts"] for r in expected if isinstance(r, dict)}) < len(expected) // 4  # many ties
    events = time_ordered(path, fmt, errors="keep", chunk_rows=chunk_rows, spill_dir=spill, fan_in=fan_in)
    assert len(events) == len(expected)
    assert events.spilled == (chunk_rows < len(expected))
    assert list(events) == expected  # Rejected rows too: raw bytes, reason, path and line survive the spill
    assert listing(spill) == []


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("chunk_rows", [1, 5, 10**6])
def test_an_ordered_file_is_streamed_without_spilling(tmp_path, spill, fmt, chunk_rows):
    path = write(tmp_path / f"in.{fmt}", fmt, 300, ordered=True)
    expected = read_events(path, fmt, errors="keep")
    assert expected == list(iter_events(path, fmt, errors="keep"))  # already in time order
    with time_ordered(path, fmt, errors="keep", chunk_rows=chunk_rows, spill_dir=spill) as events:
        assert len(events) == len(expected)
        assert not events.spilled
        assert list(events) == expected
    assert listing(spill) == []


@pytest.mark.parametrize("chunk_rows", [4, 10, 25])
def test_an_ordered_prefix_longer_than_a_chunk_is_read_again(tmp_path, spill, chunk_rows):
    ordered = write(tmp_path / "a.csv", "taobao", 60, ordered=True).read_text()
    rest = write(tmp_path / "b.csv", "taobao", 80, seed=3).read_text()
    path = tmp_path / "UserBehavior.csv"
    path.write_text(ordered + rest)
    expected = read_events(path, "taobao", errors="keep")
    assert list(time_ordered(path, "taobao", errors="keep", chunk_rows=chunk_rows, spill_dir=spill)) == expected
    assert listing(spill) == []


def test_a_chunk_that_carries_on_the_last_run_is_appended_to_it(tmp_path, spill):
    lines = [_taobao(random.Random(k), T0 + k) for k in range(100)]
    lines[0], lines[1] = lines[1], lines[0]  # out of order once, at the start
    path = tmp_path / "UserBehavior.csv"
    path.write_text("\n".join(lines) + "\n")
    events = time_ordered(path, "taobao", chunk_rows=10, spill_dir=spill)
    assert len(events) == 100
    assert len([p for p in listing(spill) if p.is_file()]) == 1  # nine chunks, one run file
    assert list(events) == read_events(path, "taobao")
    assert listing(spill) == []


def test_a_small_file_never_touches_the_disk(tmp_path, spill):
    path = write(tmp_path / "UserBehavior.csv", "taobao", 200)
    events = time_ordered(path, "taobao", errors="keep", chunk_rows=500, spill_dir=spill)
    assert len(events) > 100 and not events.spilled
    assert listing(spill) == []
    assert list(events) == read_events(path, "taobao", errors="keep")


def test_gzip_and_raise_mode(tmp_path, spill):
    text = write(tmp_path / "plain.csv", "taobao", 300, bad=0.0).read_text()
    path = tmp_path / "UserBehavior.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    expected = read_events(path, "taobao")
    assert list(time_ordered(path, "taobao", chunk_rows=16, spill_dir=spill)) == expected
    assert listing(spill) == []


def test_stopping_early_removes_the_temporary_files(tmp_path, spill):
    path = write(tmp_path / "UserBehavior.csv", "taobao", 400)
    events = time_ordered(path, "taobao", errors="keep", chunk_rows=20, spill_dir=spill)
    first = [next(events) for _ in range(5)]
    assert listing(spill) != []  # the run files are being merged
    events.close()
    assert listing(spill) == []
    assert first == read_events(path, "taobao", errors="keep")[:5]
    assert list(events) == []

    for k, _ in enumerate(time_ordered(path, "taobao", errors="keep", chunk_rows=20, spill_dir=spill)):
        if k == 3:
            break  # nothing holds the iterator any more
    gc.collect()
    assert listing(spill) == []

    with pytest.raises(RuntimeError, match="consumer"), time_ordered(path, "taobao", errors="keep", chunk_rows=20,
                                                                    spill_dir=spill) as events:
        for k, _ in enumerate(events):
            if k == 7:
                raise RuntimeError("the consumer failed")
    assert listing(spill) == []


def test_a_bad_row_after_spills_raises_and_removes_the_temporary_files(tmp_path, spill):
    path = write(tmp_path / "UserBehavior.csv", "taobao", 300, bad=0.0)
    with path.open("a") as fh:
        fh.write("1,2,3,like,5\n")
    events = time_ordered(path, "taobao", chunk_rows=10, spill_dir=spill)  # errors="raise"
    with pytest.raises(SourceError, match=r"UserBehavior\.csv:301: unknown behavior 'like'"):
        next(events)
    assert listing(spill) == []


def test_ctrl_c_while_spilling_removes_the_temporary_files(tmp_path, spill, monkeypatch):
    path = write(tmp_path / "UserBehavior.csv", "taobao", 300)
    calls = []
    real = ordering._dump

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(ordering, "_dump", interrupted)
    events = time_ordered(path, "taobao", errors="keep", chunk_rows=10, spill_dir=spill)
    with pytest.raises(KeyboardInterrupt):
        len(events)
    assert listing(spill) == []


def test_a_file_changed_before_it_is_read_again_is_refused(tmp_path, spill):
    path = write(tmp_path / "UserBehavior.csv", "taobao", 100, ordered=True)
    events = time_ordered(path, "taobao", errors="keep", chunk_rows=10, spill_dir=spill)
    assert len(events) > 90 and not events.spilled
    with path.open("a") as fh:
        fh.write(_taobao(random.Random(0), T0) + "\n")
    with pytest.raises(FileChanged, match="changed while it was being replayed"):
        next(events)


def test_arguments_are_checked_at_call_time(tmp_path):
    path = write(tmp_path / "UserBehavior.csv", "taobao", 10)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="chunk_rows must be a whole number >= 1"):
            time_ordered(path, "taobao", chunk_rows=bad)
    with pytest.raises(ValueError, match="fan_in must be a whole number >= 2"):
        time_ordered(path, "taobao", fan_in=1)
    with pytest.raises(UnknownFormat):
        time_ordered(path, "parquet")
    with pytest.raises(FileNotFoundError, match="taobao input file not found"):
        time_ordered(tmp_path / "missing.csv", "taobao")
    with pytest.raises(ValueError, match="errors must be"):
        time_ordered(path, "taobao", errors="skip")  # type: ignore[call-overload]


MEASURE = """
import json, sys, zlib
from pathlib import Path

def vm(field):
    return next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith(field + ":"))

from stream_app.data.ordering import time_ordered
from stream_app.data.sources import read_events

way, path, spill = sys.argv[1:]
before = vm("VmRSS")
rows = read_events(path, "taobao") if way == "whole" else time_ordered(path, "taobao", chunk_rows=20_000, spill_dir=spill)
n = crc = 0
for row in rows:
    n += 1
    crc = zlib.crc32(row["event_id"].encode(), crc)
print(json.dumps({"above_start": vm("VmHWM") - before, "digest": [n, crc]}))
"""


def _replay(way: str, path: Path, spill: Path) -> dict:
    """Replay ``path`` in a fresh process; the peak resident memory above its start, and a digest of the rows."""
    done = subprocess.run([sys.executable, "-c", MEASURE, way, str(path), str(spill)], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parents[4])
    return json.loads(done.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak memory from /proc")
def test_memory_is_bounded_by_the_chunk_not_the_file(tmp_path, spill):
    rng = random.Random(1)
    path = tmp_path / "UserBehavior.csv"
    with path.open("w") as fh:  # grouped by user, each user's rows at random times (like the real file)
        for user in range(3_000):
            fh.writelines(f"{user},{rng.randrange(10**6)},{rng.randrange(5000)},pv,{T0 + rng.randrange(800_000)}\n"
                          for _ in range(100))
    whole = _replay("whole", path, spill)
    streamed = _replay("streamed", path, spill)
    assert streamed["digest"] == whole["digest"] and whole["digest"][0] == 300_000  # the same rows, same order
    # 15 chunks of 20k rows spilled and merged: a fraction of the memory of the whole list (about 1/10 here)
    assert streamed["above_start"] < whole["above_start"] / 4, (streamed, whole)
    assert listing(spill) == []
