"""``GET /metrics`` (Prometheus) and ``GET /health``: open to scrapers and probes, no token."""

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

    w.app.page("/metrics")(MetricsView)
    w.app.page("/health")(HealthView)
