"""Per-user look-ups: ``GET /users/{user_id}/state`` and ``GET /users/{user_id}/recommendations``.

Answered by the worker that owns the user's partition (other workers forward the request there,
query string included, the caller's token only to an allowed host: :mod:`stream_app.web.routing`). Both require ``Authorization: Bearer <token>`` when
``STREAMREC_AUTH_TOKEN`` is set.

``/recommendations`` without ``fresh=true`` is the last message pushed to the user, byte for
byte; with ``fresh=true`` (and optional ``n``, ``exclude``) a list ranked now from the user's
stored state (:class:`stream_app.core.on_request.OnRequest`, which says why such a list is not
taken for the user's impression). See docs/API.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View

from stream_app.core.on_request import OnRequest
from stream_app.core.state import decode_state
from stream_app.web.answers import answer, error
from stream_app.web.auth import authorized
from stream_app.web.params import BadRequest, check_id, parse_list_query, require_catalogue
from stream_app.web.peers import peer_allowed
from stream_app.web.routing import owner_route

if TYPE_CHECKING:
    from stream_app.worker.build import Worker


def register_user_views(w: Worker, on_request: OnRequest | None = None) -> None:
    app, table, scorer = w.app, w.user_state, w.scorer
    guard = authorized(w.settings.auth_token)
    ranker = on_request if on_request is not None else OnRequest(w.pipeline, recent_max=w.settings.recent_max)
    top_k = w.settings.top_k
    route = owner_route(app, table, "user_id", peer_allowed(w.settings.peer_hosts, w.settings.advertised_web_host))
    # ``self: View`` below: the route decorators take handlers of any View, not of a subclass

    class UserStateView(View):
        @guard
        @route
        async def get(self: View, request: Request, user_id: str) -> Response:
            raw = table.get(user_id.encode())
            if raw is None:
                return self.json({"error": f"no state for user {user_id!r}"}, status=404)
            return self.json(decode_state(raw).to_json(user_id))

    class UserRecommendationsView(View):
        @guard
        @route
        async def get(self: View, request: Request, user_id: str) -> Response:
            query = request.query
            if not query:  # the contract's answer, unchanged
                return last_pushed(self, user_id)
            try:
                q = parse_list_query(query, top_k)
                if q.fresh:
                    check_id(user_id, "user_id")
                    require_catalogue(q.category, len(w.pipeline.filter.catalogue))
            except BadRequest as exc:
                return error(self, str(exc))
            if not q.fresh:
                return last_pushed(self, user_id)

            async def fresh() -> dict[str, Any]:
                raw = table.get(user_id.encode())
                return ranker.for_user(user_id, None if raw is None else decode_state(raw), q.n, q.exclude,
                                       q.category, q.explain)

            return await answer(self, fresh)

    def last_pushed(view: View, user_id: str) -> Response:
        raw = scorer.last_recommendation(user_id)
        if raw is None:
            return error(view, f"no recommendation sent to user {user_id!r} by this worker", 404)
        return view.bytes(raw, content_type="application/json")

    app.page("/users/{user_id}/state")(UserStateView)
    app.page("/users/{user_id}/recommendations")(UserRecommendationsView)
