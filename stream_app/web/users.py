"""The worker's web views: per-user look-ups, Prometheus metrics, health, and the dashboard.

Every view but ``/metrics`` and ``/health`` requires ``Authorization: Bearer <token>`` when
``STREAMREC_AUTH_TOKEN`` is set. User look-ups are answered by the worker that owns the user's
partition (other workers redirect there).
"""

from __future__ import annotations

import hmac
from functools import wraps

from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_app.core import metrics
from stream_app.core.state import decode_state
from stream_app.settings import get_settings
from stream_app.worker.agents import scorer
from stream_app.worker.app import app
from stream_app.worker.tables import user_state

settings = get_settings()


def authorized(view):
    """Require the bearer token (when one is configured)."""

    @wraps(view)
    async def wrapper(self, request, *args, **kwargs):
        token = settings.auth_token
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return self.json({"error": "missing or wrong bearer token"}, status=401)
        return await view(self, request, *args, **kwargs)

    return wrapper


@app.page("/users/{user_id}/state")
class UserStateView(View):
    @authorized
    @app.table_route(table=user_state, match_info="user_id")
    async def get(self, request, user_id: str):
        raw = user_state.get(user_id.encode())
        if raw is None:
            return self.json({"error": f"no state for user {user_id!r}"}, status=404)
        return self.json(decode_state(raw).to_json(user_id))


@app.page("/users/{user_id}/recommendations")
class UserRecommendationsView(View):
    @authorized
    @app.table_route(table=user_state, match_info="user_id")
    async def get(self, request, user_id: str):
        raw = scorer.last_recommendation(user_id)
        if raw is None:
            return self.json({"error": f"no recommendation sent to user {user_id!r} by this worker"}, status=404)
        return self.bytes(raw, content_type="application/json")


@app.page("/metrics")
class MetricsView(View):
    async def get(self, request):
        return self.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])


@app.page("/health")
class HealthView(View):
    async def get(self, request):
        return self.json({"status": "ok", "scored": scorer.sent})
