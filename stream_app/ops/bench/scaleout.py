"""The scale-out scenario of the benchmark (``streamrec bench --scaleout 1,2,4 --out FILE.json``).

The same synthetic stream goes through groups of 1, 2, 4 ... workers, with shared item knowledge
(``STREAMREC_SHARE_ITEMS=true``, the default) and without it. For each run: NDCG@10 and HR@10
judged from the pushed messages themselves (see :mod:`stream_app.ops.scaleout`), the rate from the
first event produced to the last recommendation read, how many events each worker's item-side
models learned, and the bytes of shared knowledge per event published and read. Workers are
started and have split the partitions before the stream is produced.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from stream_app.data.synthetic import generate
from stream_app.ops.bench.procs import delete_topics, local_broker
from stream_app.ops.scaleout import run_group
from stream_app.settings import Settings


def run_scaleout(settings: Settings, out: Path, groups: Sequence[int] = (1, 2, 4), events: int = 40_000,
                 users: int = 4_000, items: int = 2_000, seed: int = 0, command: Sequence[str] | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every group size with and without sharing; write the JSON report to ``out`` and return it."""
    stream = list(generate(events, n_users=users, n_items=items, seed=seed))
    started = time.time()
    report: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": list(command if command is not None else sys.argv),
        "config": {"groups": list(groups), "events": events, "users": users, "items": items, "seed": seed,
                   "partitions": settings.events_partitions},
        "runs": [],
    }
    tag = f"scaleout-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="streamrec-scaleout-"))
    with local_broker(settings, log):
        try:
            for n in groups:
                for share in (True, False):
                    log(f"{n} worker(s), sharing {'on' if share else 'off'}: {events} events")
                    try:
                        run = run_group(settings.kafka_connection(), work / f"{n}-{share}", stream, n, share=share,
                                        partitions=settings.events_partitions, timeout=900, tag=tag)
                    except RuntimeError as exc:  # reported, and the other group sizes still run
                        log(f"  failed: {exc}")
                        report["runs"].append({"workers": n, "share_items": share, "error": str(exc)[:2000]})
                        continue
                    row = run.summary()
                    log(f"  NDCG@10 {row['ndcg@10']}, HR@10 {row['hr@10']}, {row['events_per_s']} events/s, "
                        f"shared bytes/event out {row['shared_bytes_out_per_event']} "
                        f"in {row['shared_bytes_in_per_event']}")
                    report["runs"].append(row)
        finally:
            delete_topics(settings.kafka_connection(), f"{tag}-")
            shutil.rmtree(work, ignore_errors=True)
    base = {r["share_items"]: r["ndcg@10"] for r in report["runs"] if r["workers"] == groups[0] and "error" not in r}
    for r in report["runs"]:
        one = base.get(r["share_items"])
        r["ndcg_vs_first_group"] = round(r["ndcg@10"] / one, 3) if one and "error" not in r else None
    report["seconds"] = round(time.time() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report


def scaleout_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table (what the command prints)."""
    lines = ["| workers | sharing | NDCG@10 | vs fewest workers | HR@10 | events/s | shared B/event out, in "
             "| shared lag p50, p99 (ms) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        if "error" in r:
            lines.append(f"| {r['workers']} | {'on' if r['share_items'] else 'off'} | failed: "
                         f"{r['error'].splitlines()[0][:80]} | | | | | |")
            continue
        lag = r.get("shared_lag_ms") or {}
        lag_text = ", ".join("–" if lag.get(q) is None else f"≤{lag[q]:.0f}" for q in ("p50", "p99"))
        lines.append(f"| {r['workers']} | {'on' if r['share_items'] else 'off'} | {r['ndcg@10']:.4f} | "
                     f"{r['ndcg_vs_first_group']} | {r['hr@10']:.4f} | {r['events_per_s']:.0f} | "
                     f"{r['shared_bytes_out_per_event']}, {r['shared_bytes_in_per_event']} | {lag_text} |")
    return "\n".join(lines)
