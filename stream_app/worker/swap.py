"""Hot-swapping the deep model: watch the registry, load and check off the event loop, swap
one reference between batches, keep the previous model for rollback.

A corrupt or mismatched artifact is refused, logged and counted; the model in service stays.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.base import Recommender, UserContext
from stream_app.core.metrics import WorkerMetrics

if TYPE_CHECKING:  # the registry imports torch: keep it off the import path until a model loads
    from models.deep.model import DeepRecommender
    from models.deep.registry import Registry

log = logging.getLogger(__name__)
LOAD_SWITCH_INTERVAL_S = 0.0005

GOLDEN_USERS = [
    UserContext("golden-empty"),
    UserContext("golden-short", recent_items=("unknown-item",)),
]


class ModelWatcher:
    """Polls the registry's promoted version and swaps it into a :class:`Pipeline`."""

    def __init__(self, pipeline: Any, registry_root: Path, history: int = 50,
                 metrics: WorkerMetrics | None = None, signing_key: bytes | None = None) -> None:
        self.pipeline = pipeline
        self.signing_key = signing_key
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.registry_root = Path(registry_root)
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self.previous: Recommender | None = None
        self.refused: set[str] = set()
        self._registry: Registry | None = None
        self._last_problem: str | None = None

    @property
    def serving(self) -> str | None:
        deep = self.pipeline.ranker.deep
        return deep.version if deep is not None else None

    def _load_checked(self, version: str) -> tuple[DeepRecommender, Any]:
        """Runs in a worker thread: verify, load, check finite scores, warm up."""
        from models.deep.registry import Registry

        if self._registry is None:
            self._registry = Registry(self.registry_root, self.signing_key)
        model = self._registry.load(version)
        golden = [
            *GOLDEN_USERS, UserContext("golden-known", recent_items=tuple(model.vocab_items()[:5]))
        ] if hasattr(model, "vocab_items") else GOLDEN_USERS
        model.check(golden)
        model.rank_many(golden, 10, [frozenset()] * len(golden))  # warm-up
        retriever = self.pipeline.prepare_deep(model)
        retriever.rank_many(golden, 10, [frozenset()] * len(golden))
        return model, retriever

    def _current(self) -> str | None:
        from models.deep.registry import Registry

        if not self.registry_root.exists():
            return None
        if self._registry is None:
            self._registry = Registry(self.registry_root, self.signing_key)
        return self._registry.current()

    async def check_once(self) -> str | None:
        """Swap in the promoted version if it differs from the one serving; return the outcome."""
        try:
            wanted = await asyncio.to_thread(self._current)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._last_problem:  # say it once, not at every poll
                log.warning("model registry at %s unreadable: %s", self.registry_root, problem)
                self._last_problem = problem
            return None
        self._last_problem = None
        if wanted is None or wanted == self.serving or wanted in self.refused:
            return None
        t0 = time.perf_counter()
        try:
            # the loading thread holds the GIL for up to the switch interval (5 ms) at a time:
            # hand it back to the event loop sooner while a model loads, so the stream stalls less
            switch = sys.getswitchinterval()
            sys.setswitchinterval(min(switch, LOAD_SWITCH_INTERVAL_S))
            try:
                model, retriever = await asyncio.to_thread(self._load_checked, wanted)
            finally:
                sys.setswitchinterval(switch)
        except Exception as exc:
            self.refused.add(wanted)
            self.metrics.swaps.labels("refused").inc()
            self.history.append({"at": time.time(), "version": wanted, "ok": False, "reason": str(exc)})
            log.error("refused deep model %s: %s; still serving %s", wanted, exc, self.serving)
            return "refused"
        load_s = time.perf_counter() - t0
        old = self.serving
        t1 = time.perf_counter()
        self.previous = self.pipeline.ranker.deep
        self.pipeline.install_deep(model, retriever)  # references only: the next batch uses the new model
        swap_ms = (time.perf_counter() - t1) * 1000
        self.metrics.model_info.clear()
        self.metrics.model_info.labels(wanted).set(1)
        self.metrics.swaps.labels("ok").inc()
        self.history.append(
            {"at": time.time(), "version": wanted, "ok": True, "from": old,
             "load_s": round(load_s, 3), "swap_ms": round(swap_ms, 4)}
        )
        log.info("deep model %s in service (was %s); loaded and checked in %.2fs", wanted, old, load_s)
        return "swapped"

    async def run(self, interval_s: float) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(interval_s)

