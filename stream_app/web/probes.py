"""``GET /metrics`` (Prometheus), ``GET /health`` and ``GET /ready``: open to scrapers and probes, no token.

``/health`` answers 200 while the worker's web server runs (a liveness probe). ``/ready`` answers
200 once the worker scores: it has caught up with the shared item knowledge and the item catalogue
and its scoring loop runs; before that 503, with what it still waits for (a readiness probe, so
requests for fresh lists go to workers that know what the group knows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from stream_app.worker.build import Worker


def register_probes(w: Worker) -> None:
    registry, scorer = w.metrics.registry, w.scorer

    class MetricsView(View):
        async def get(self, request: Any) -> Any:
            return self.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    class HealthView(View):
        async def get(self, request: Any) -> Any:
            return self.json({"status": "ok", "scored": scorer.sent})

    class ReadyView(View):
        async def get(self, request: Any) -> Any:
            waiting = waiting_for(w)
            body = {"status": "waiting" if waiting else "ready", "waiting_for": waiting, "scored": scorer.sent}
            return self.json(body, status=503 if waiting else 200)

    w.app.page("/metrics")(MetricsView)
    w.app.page("/health")(HealthView)
    w.app.page("/ready")(ReadyView)


def waiting_for(w: Worker) -> list[str]:
    """What the worker still waits for before it scores (empty: ready)."""
    waiting = []
    if w.shared is not None and not w.shared.ready.is_set():
        waiting.append("shared item knowledge")
    if w.catalogue is not None and not w.catalogue.ready.is_set():
        waiting.append("item catalogue")
    if not w.scorer.running:
        waiting.append("scoring loop")
    return waiting
