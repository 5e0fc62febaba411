"""``/ready`` says what a worker still waits for before it scores."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from stream_app.web.probes import waiting_for


def reader(ready: bool) -> SimpleNamespace:
    event = asyncio.Event()
    if ready:
        event.set()
    return SimpleNamespace(ready=event)


def test_a_worker_is_ready_only_once_every_reader_caught_up_and_the_scorer_runs():
    w = SimpleNamespace(shared=reader(False), catalogue=reader(False), scorer=SimpleNamespace(running=False))
    assert waiting_for(w) == ["shared item knowledge", "item catalogue", "scoring loop"]  # type: ignore[arg-type]
    w.shared.ready.set()
    w.catalogue.ready.set()
    assert waiting_for(w) == ["scoring loop"]  # type: ignore[arg-type]
    w.scorer.running = True
    assert waiting_for(w) == []  # type: ignore[arg-type]


def test_a_worker_without_sharing_waits_only_for_what_it_reads():
    w = SimpleNamespace(shared=None, catalogue=reader(True), scorer=SimpleNamespace(running=True))
    assert waiting_for(w) == []  # type: ignore[arg-type]
