"""Sampling profiles of a benchmark worker with py-spy, and a summary of where its time goes.

``py-spy record --format raw`` writes one line per distinct stack: the frames, outermost first,
joined by ``;``, then a space and the number of samples. :func:`summarize` turns that into the
functions that hold the most samples, by their own time (the innermost frame) and including
what they call (anywhere in the stack, counted once per stack).

>>> raw = "main (a.py:1);loop (a.py:5);score (p.py:9) 30\\nmain (a.py:1);loop (a.py:5);send (k.py:2) 10\\n"
>>> s = summarize(raw)
>>> s["samples"], s["self"][0], s["inclusive"][0]["samples"]
(40, {'function': 'score (p.py)', 'samples': 30, 'share': 0.75}, 40)
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_LINE = re.compile(r":\d+\)$")


def _frame(name: str) -> str:
    """``func (file.py:12)`` -> ``func (file.py)``: one entry per function, not per line."""
    return _LINE.sub(")", name.strip())


def start(pid: int, out: Path, rate: int = 100) -> subprocess.Popen[bytes] | None:
    """Record process ``pid`` until it exits; None when py-spy is not installed."""
    beside = Path(sys.executable).with_name("py-spy")
    exe = str(beside) if beside.exists() else shutil.which("py-spy")
    if exe is None:
        return None
    cmd = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out),
           "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes], out: Path, top: int = 25) -> dict[str, Any] | None:
    """End a recording (py-spy writes its file on SIGINT) and summarize it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if not out.exists():
        return None
    return summarize(out.read_text(errors="replace"), top) | {"raw": str(out)}


def summarize(raw: str, top: int = 25) -> dict[str, Any]:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n

    def rows(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "samples": n, "share": round(n / total, 4) if total else 0.0}
                for f, n in c.most_common(top)]

    return {"samples": total, "self": rows(own), "inclusive": rows(incl)}
