"""``streamrec produce FILE``: the file's rows in time order, streamed, with their total for the progress bar."""

from __future__ import annotations

import random

import pytest

from stream_app.cli import produce as produce_module
from stream_app.cli.main import main
from stream_app.data.ordering import TimeOrdered
from stream_app.data.sources import Rejected, read_events

pytestmark = pytest.mark.usefixtures("own_settings")


@pytest.fixture
def sent(monkeypatch):
    """What ``produce_events`` was given (nothing is sent)."""
    calls: list[dict] = []

    def fake(source, kafka, rate=0.0, total=None, progress=True, kafka_kwargs=None, topic="events"):
        calls.append({"source": source, "rows": list(source), "total": total})
        rows = calls[-1]["rows"]
        return len(rows), sum(isinstance(r, Rejected) for r in rows), 0.5

    monkeypatch.setattr(produce_module, "produce_events", fake)
    return calls


@pytest.mark.parametrize("limit", [0, 7, 10_000])
def test_produce_streams_the_file_in_time_order(tmp_path, sent, capsys, limit):
    rng = random.Random(limit)
    path = tmp_path / "UserBehavior.csv"
    lines = [f"{rng.randrange(5)},{rng.randrange(20)},1,pv,{1_511_539_200 + rng.randrange(10)}" for _ in range(300)]
    lines[5] = "1,2,3,like,5"
    path.write_text("\n".join(lines) + "\n")
    argv = ["produce", str(path), "--format", "taobao", "--no-progress"] + (["--limit", str(limit)] if limit else [])
    assert main(argv) == 0
    expected = read_events(path, "taobao", errors="keep")[:limit or None]
    (call,) = sent
    assert call["rows"] == expected
    assert call["total"] == len(expected)
    assert not isinstance(call["source"], list)  # an iterator over the ordered file, not a list of it
    rejected = int(any(isinstance(r, Rejected) for r in expected))
    assert capsys.readouterr().err.strip() == (f"sent {len(expected)} events ({rejected} invalid rows sent as-is "
                                               f"for the DLQ) in 0.5s = {2 * len(expected):,} events/s")


def test_produce_removes_its_temporary_files_even_when_it_stops_early(tmp_path, sent, monkeypatch):
    from stream_app.data import ordering

    spill = tmp_path / "spill"
    spill.mkdir()
    made: list[TimeOrdered] = []
    real = ordering.time_ordered

    def small_chunks(*args, **kwargs):
        made.append(real(*args, **kwargs, chunk_rows=2, spill_dir=spill))
        return made[-1]

    monkeypatch.setattr(ordering, "time_ordered", small_chunks)
    path = tmp_path / "UserBehavior.csv"
    path.write_text("".join(f"1,{k},3,pv,{100 - k}\n" for k in range(20)))
    assert main(["produce", str(path), "--format", "taobao", "--no-progress", "--limit", "3"]) == 0
    assert [r["event_id"] for r in sent[0]["rows"]] == ["taobao-20", "taobao-19", "taobao-18"]
    assert made[0].spilled  # the run files were there while it produced, and are gone
    assert list(spill.iterdir()) == []
