"""Per-user look-ups: ``GET /users/{user_id}/state`` and ``GET /users/{user_id}/recommendations``.

Answered by the worker that owns the user's partition (other workers redirect there). Both
require ``Authorization: Bearer <token>`` when ``STREAMREC_AUTH_TOKEN`` is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faust.web import Request, Response, View

from stream_app.core.state import decode_state
from stream_app.web.auth import authorized

if TYPE_CHECKING:
    from stream_app.worker.build import Worker


def register_user_views(w: Worker) -> None:
    app, table, scorer = w.app, w.user_state, w.scorer
    guard = authorized(w.settings.auth_token)
    # ``self: View`` below: Faust's route decorators take handlers of any View, not of a subclass

    class UserStateView(View):
        @guard
        @app.table_route(table=table, match_info="user_id")
        async def get(self: View, request: Request, user_id: str) -> Response:
            raw = table.get(user_id.encode())
            if raw is None:
                return self.json({"error": f"no state for user {user_id!r}"}, status=404)
            return self.json(decode_state(raw).to_json(user_id))

    class UserRecommendationsView(View):
        @guard
        @app.table_route(table=table, match_info="user_id")
        async def get(self: View, request: Request, user_id: str) -> Response:
            raw = scorer.last_recommendation(user_id)
            if raw is None:
                return self.json({"error": f"no recommendation sent to user {user_id!r} by this worker"}, status=404)
            return self.bytes(raw, content_type="application/json")

    app.page("/users/{user_id}/state")(UserStateView)
    app.page("/users/{user_id}/recommendations")(UserRecommendationsView)
