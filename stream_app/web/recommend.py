"""Request-time lists that any worker answers: ``POST /recommend`` and ``GET /items/{item_id}/similar``.

Neither needs a user's stored state, so neither is forwarded to an owner: an anonymous session
brings its recent items in the body, and an item's neighbours are item-side knowledge. A fresh
list for a known user is ``GET /users/{id}/recommendations?fresh=true`` (:mod:`stream_app.web.users`).
:func:`register_request_views` also serves the OpenAPI document (:mod:`stream_app.web.openapi`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web as aioweb
from faust.web import Request, Response, View

from stream_app.core.on_request import OnRequest
from stream_app.web.answers import answer, json_bytes
from stream_app.web.auth import authorized
from stream_app.web.openapi import openapi_document
from stream_app.web.params import (
    MAX_BODY_BYTES,
    BadRequest,
    check_id,
    parse_session,
    parse_similar_query,
    require_catalogue,
)

if TYPE_CHECKING:
    from stream_app.worker.build import Worker


async def read_body(request: Any) -> bytes:
    """The request's body, at most :data:`MAX_BODY_BYTES` (a larger one is a :class:`BadRequest`)."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body: bytes = await request.read()
    except aioweb.HTTPRequestEntityTooLarge:
        raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes") from None
    return body


def register_request_views(w: Worker, on_request: OnRequest | None = None) -> OnRequest:
    """Serve ``POST /recommend``, ``GET /items/{item_id}/similar`` and ``GET /openapi.json``."""
    s = w.settings
    guard = authorized(s.auth_token)
    ranker = on_request if on_request is not None else OnRequest(w.pipeline, recent_max=s.recent_max)
    top_k = s.top_k
    document = openapi_document(top_k=top_k, auth=bool(s.auth_token))

    class RecommendView(View):
        @guard
        async def post(self: View, request: Request) -> Response:
            async def session() -> dict[str, Any]:
                got = parse_session(await read_body(request), top_k)
                require_catalogue(got.category, len(w.pipeline.filter.catalogue))
                return ranker.for_session(got.items, got.n, got.exclude, got.category, got.explain)

            return await answer(self, session)

    class SimilarView(View):
        @guard
        async def get(self: View, request: Request, item_id: str) -> Response:
            async def similar() -> dict[str, Any]:
                q = parse_similar_query(request.query, top_k)
                require_catalogue(q.category, len(w.pipeline.filter.catalogue))
                return ranker.similar(check_id(item_id, "item_id"), q.n, q.category, q.explain)

            return await answer(self, similar)

    class OpenApiView(View):
        @guard
        async def get(self: View, request: Request) -> Response:
            return json_bytes(self, document)

    w.app.page("/recommend")(RecommendView)
    w.app.page("/items/{item_id}/similar")(SimilarView)
    w.app.page("/openapi.json")(OpenApiView)
    return ranker
