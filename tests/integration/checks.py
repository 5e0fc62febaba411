"""Checks several broker-backed tests share."""

from __future__ import annotations

import time
from typing import Any

import orjson

from stream_app.ops.reliability.harness import expected_counts
from stream_app.ops.testbed import WorkerProc


def users_with_wrong_counts(w: WorkerProc, events: list[dict[str, Any]], timeout: float = 30.0) -> list[Any]:
    """Users whose state (asked from the worker) does not count exactly the events produced, once
    every user's does or ``timeout`` passed; empty when all match."""
    expected = expected_counts(events)
    deadline = time.monotonic() + timeout
    wrong: list[Any] = list(expected)
    while wrong and time.monotonic() < deadline:
        wrong = []
        for user, counts in expected.items():
            status, body = w.get(f"/users/{user}/state")
            if status != 200 or orjson.loads(body)["counts"] != counts:
                wrong.append((user, status, body[:160]))
        time.sleep(0.5)
    return wrong
