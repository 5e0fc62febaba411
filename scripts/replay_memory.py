"""Measure the time and peak memory to replay a large dataset file in time order, streamed or whole.

Writes a Taobao-format file (``UserBehavior.csv``: grouped by user, each user's rows out of time
order, as in the real file) unless ``--file`` is given, then, each in a fresh process, reads it
through :func:`stream_app.data.ordering.time_ordered` (``stream``) and through
:func:`stream_app.data.sources.read_events` (``read``), iterating every row as ``streamrec
produce`` does, and prints one JSON line per way: seconds, peak resident memory (``VmHWM``) and
the part of it above the process's memory before the file was read.

    .venv/bin/python scripts/replay_memory.py --rows 3000000 --file /tmp/UserBehavior-3M.csv
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BEHAVIORS = ("pv", "fav", "cart", "buy")
WEIGHTS = (0.895, 0.03, 0.055, 0.02)
START, DAYS = 1_511_539_200, 9


def write_taobao(path: Path, rows: int, seed: int = 0) -> None:
    """A Taobao-format file of ``rows`` rows: users in id order, each with 1-200 rows at random times."""
    rng = random.Random(seed)
    user, written = 0, 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < rows:
            user += rng.randrange(1, 4)
            n = min(rows - written, rng.randrange(1, 200))
            kinds = rng.choices(BEHAVIORS, WEIGHTS, k=n)
            fh.writelines(f"{user},{rng.randrange(1, 5_000_000)},{rng.randrange(1, 10_000)},{kind},"
                          f"{START + rng.randrange(DAYS * 86_400)}\n" for kind in kinds)
            written += n


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(way: str, path: Path, fmt: str, chunk_rows: int) -> dict[str, object]:
    """Replay ``path`` one way in this process; seconds and peak memory."""
    from stream_app.data.ordering import time_ordered
    from stream_app.data.sources import read_events

    before = _vm("VmRSS")
    start = time.perf_counter()
    rows = last = 0.0
    if way == "stream":
        with time_ordered(path, fmt, errors="keep", chunk_rows=chunk_rows) as events:
            for ev in events:
                rows += 1
                last = ev["ts"] if isinstance(ev, dict) else last
    else:
        for ev in read_events(path, fmt, errors="keep"):
            rows += 1
            last = ev["ts"] if isinstance(ev, dict) else last
    secs = time.perf_counter() - start
    peak = _vm("VmHWM")
    return {"way": way, "rows": int(rows), "chunk_rows": chunk_rows if way == "stream" else None,
            "seconds": round(secs, 1), "peak_rss_mb": round(peak / 2**20), "above_start_mb": round((peak - before) / 2**20)}


def _fail(message: str) -> None:
    print(f"replay_memory.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3_000_000, help="rows of the generated file")
    ap.add_argument("--file", type=Path, help="the file to replay (written first when missing)")
    ap.add_argument("--format", dest="fmt", default="taobao", help="format of --file (default taobao)")
    ap.add_argument("--chunk-rows", type=int, default=None, help="rows sorted in memory at a time "
                    "(default: time_ordered's)")
    ap.add_argument("--ways", default="stream,read", help="comma-separated: stream, read")
    ap.add_argument("--one", choices=("stream", "read"), help=argparse.SUPPRESS)  # a child process's way
    ap.error = _fail  # type: ignore[method-assign]  # one line, not the usage too
    args = ap.parse_args()
    from stream_app.data.ordering import DEFAULT_CHUNK_ROWS

    chunk_rows = DEFAULT_CHUNK_ROWS if args.chunk_rows is None else args.chunk_rows
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    if args.rows < 1:
        _fail(f"--rows must be at least 1, got {args.rows}")
    if chunk_rows < 1:
        _fail(f"--chunk-rows must be at least 1, got {chunk_rows}")
    if not ways or any(w not in ("stream", "read") for w in ways):
        _fail(f"--ways takes stream and/or read, got {args.ways!r}")
    if args.one:
        print(json.dumps(measure(args.one, args.file, args.fmt, chunk_rows)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / "UserBehavior.csv"
        if not path.exists():
            if args.fmt != "taobao":
                _fail(f"--file {path} does not exist (only a taobao file can be generated)")
            start = time.perf_counter()
            write_taobao(path, args.rows)
            print(f"wrote {args.rows:,} rows to {path} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        for way in ways:
            done = subprocess.run([sys.executable, __file__, "--one", way, "--file", str(path), "--format", args.fmt,
                                   "--chunk-rows", str(chunk_rows)], check=False)
            if done.returncode:
                sys.exit(f"replay_memory.py: error: the {way} run failed (status {done.returncode})")


if __name__ == "__main__":
    main()
