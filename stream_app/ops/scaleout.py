"""Quality and cost of a group of workers, judged from the messages they push (real broker).

:func:`run_group` starts ``n`` worker processes in one consumer group on an isolated pipeline,
waits until they split the partitions, produces a stream, reads one recommendation per event and
judges each user's next event against the list pushed after the user's previous event
(:func:`judge_pushed`: HR@10 and NDCG@10 under the worker's own exclusions, since these are the
lists it served). It also reads every worker's ``/metrics``: how many events its item-side models
learned (with shared item knowledge each worker learns every event once) and the bytes of shared
knowledge it published and read.

>>> events = [{"user_id": "u", "item_id": i, "event_id": f"e{n}"} for n, i in enumerate("abc")]
>>> judge_pushed(events, {"e0": ["x", "b"], "e1": ["c"]})
{'judged': 2, 'hr@10': 1.0, 'ndcg@10': 0.8154648767857288}
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from stream_app.kafka import KafkaTarget
from stream_app.ops.testbed import IsolatedPipeline, WorkerProc, read_records, send_events


def judge_pushed(events: Sequence[dict[str, Any]], pushed: dict[str, list[str]], k: int = 10) -> dict[str, Any]:
    """For each user's next event: was its item in the list pushed after the previous one, and where?"""
    last: dict[str, str] = {}
    hits = judged = 0
    dcg = 0.0
    for ev in events:
        prev = last.get(ev["user_id"])
        if prev is not None:
            judged += 1
            lst = pushed.get(prev, [])[:k]
            if ev["item_id"] in lst:
                hits += 1
                dcg += 1.0 / math.log2(lst.index(ev["item_id"]) + 2)
        last[ev["user_id"]] = ev["event_id"]
    return {"judged": judged, "hr@10": hits / judged if judged else 0.0, "ndcg@10": dcg / judged if judged else 0.0}


def histogram_quantile(text: str, name: str, q: float) -> float | None:
    """The upper bound of the bucket where the ``q`` quantile of a Prometheus histogram falls (seconds).

    >>> page = 'h_bucket{le="0.01"} 3.0\\nh_bucket{le="0.1"} 9.0\\nh_bucket{le="+Inf"} 10.0\\n'
    >>> histogram_quantile(page, "h", 0.5), histogram_quantile(page, "h", 0.99)
    (0.1, inf)
    """
    buckets = []
    for line in text.splitlines():
        if line.startswith(name + '_bucket{le="'):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(le for le, c in buckets if c >= q * total)


def merge_histograms(pages: Sequence[str], name: str) -> str:
    """The bucket lines of one histogram summed over several pages (in the same text form)."""
    counts: dict[str, float] = {}
    for page in pages:
        for line in page.splitlines():
            if line.startswith(name + "_bucket{"):
                key, value = line.rsplit(" ", 1)
                counts[key] = counts.get(key, 0.0) + float(value)
    return "\n".join(f"{k} {v}" for k, v in counts.items())


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text page (0.0 when absent)."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@dataclass
class GroupRun:
    workers: int
    share: bool
    events: int
    quality: dict[str, Any]
    seconds: float
    """From the first event produced to the last recommendation read."""
    item_events: list[float] = field(default_factory=list)
    """Per worker: events its item-side models learned."""
    shared_bytes_out: float = 0.0
    shared_bytes_in: float = 0.0
    shared_lag_ms: dict[str, float | None] = field(default_factory=dict)
    """Upper bounds of the p50 and p99 buckets of the time from publication to learning, over the workers."""

    def summary(self) -> dict[str, Any]:
        n = max(1, self.events)
        return {
            "workers": self.workers, "share_items": self.share, "events": self.events,
            "hr@10": round(self.quality["hr@10"], 4), "ndcg@10": round(self.quality["ndcg@10"], 4),
            "judged": self.quality["judged"], "events_per_s": round(self.events / self.seconds, 1),
            "item_events_learned": self.item_events,
            "shared_bytes_out_per_event": round(self.shared_bytes_out / n, 1),
            "shared_bytes_in_per_event": round(self.shared_bytes_in / n, 1),
            "shared_lag_ms": self.shared_lag_ms,
        }


def wait_split(ws: Sequence[WorkerProc], n: int, timeout: float = 90) -> list[set[int]]:
    """Wait until every worker holds partitions and together they hold each of the ``n`` once."""
    deadline = time.monotonic() + timeout
    parts: list[set[int] | None] = []
    while time.monotonic() < deadline:
        parts = []
        for w in ws:
            status, body = w.get("/api/stats?scope=summary")
            parts.append(set(orjson.loads(body).get("partitions") or []) if status == 200 else None)
        got = [p for p in parts if p]
        if len(got) == len(ws) and sum(len(p) for p in got) == n and set().union(*got) == set(range(n)):
            return got
        time.sleep(0.5)
    idle = [f"{w.name} ({'running' if w.alive else 'exited'}):\n{w.log_tail(20)}"
            for w, got in zip(ws, parts) if not got]
    raise RuntimeError(f"the partitions never split across the {len(ws)} workers within {timeout:.0f} s: "
                       f"{parts}\n" + "\n".join(idle))


def wait_item_events(ws: Sequence[WorkerProc], expect: int, timeout: float = 30) -> list[float]:
    """Every worker's count of item-side events learned, once all reach ``expect`` or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while True:
        counts = [metric(w.get("/metrics")[1].decode(), "streamrec_item_events_learned") for w in ws]
        if all(c >= expect for c in counts) or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def run_group(kafka: KafkaTarget, root: Path, events: Sequence[dict[str, Any]], n: int, share: bool = True,
              partitions: int = 4, timeout: float = 300, tag: str = "it", **env: str) -> GroupRun:
    """Replay ``events`` through ``n`` workers in one group on a pipeline of its own under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    pipe = IsolatedPipeline(kafka, root, partitions=partitions, tag=tag)
    pipe.create_topics()
    settings = {"STREAMREC_SHARE_ITEMS": "true" if share else "false", **env}
    ws = [WorkerProc(f"w{i + 1}", pipe.env(f"w{i + 1}", **settings), root / f"w{i + 1}.log") for i in range(n)]
    try:
        for w in ws:
            w.start()
        wait_split(ws, partitions, timeout=60.0 + 45.0 * n)  # n workers rebalance on shared cores
        t0 = time.perf_counter()
        send_events(kafka, pipe.events, events)
        recs = read_records(kafka, pipe.recommendations, len(events), timeout=timeout)
        seconds = time.perf_counter() - t0
        pushed: dict[str, list[str]] = {}
        for r in recs:
            msg = orjson.loads(r.value)
            pushed.setdefault(msg["event_id"], [i["item_id"] for i in msg["items"]])
        missing = len({e["event_id"] for e in events} - set(pushed))
        if missing:
            raise RuntimeError(f"{missing} events got no recommendation:\n{ws[-1].log_tail()}")
        run = GroupRun(n, share, len(events), judge_pushed(events, pushed), seconds)
        run.item_events = wait_item_events(ws, len(events)) if share else wait_item_events(ws, 0, timeout=0)
        pages = [w.get("/metrics")[1].decode() for w in ws]
        for page in pages:
            run.shared_bytes_out += metric(page, "streamrec_shared_bytes_total", direction="out")
            run.shared_bytes_in += metric(page, "streamrec_shared_bytes_total", direction="in")
        merged = merge_histograms(pages, "streamrec_shared_lag_seconds")
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            v = histogram_quantile(merged, "streamrec_shared_lag_seconds", q)
            run.shared_lag_ms[label] = None if v is None else v * 1000.0
        return run
    finally:
        for w in ws:
            w.stop()
