"""The OpenAPI 3.1 document of the worker's web server (served at ``GET /openapi.json``).

Every endpoint the worker serves is described here, with the schemas of its answers; the
integration test ``tests/integration/test_requests.py`` validates real answers of a real worker
against them. Schemas are JSON Schema 2020-12, as OpenAPI 3.1 has them.

>>> doc = openapi_document(top_k=10, auth=True)
>>> doc["openapi"], sorted(doc["paths"])[:3]
('3.1.0', ['/api/stats', '/dashboard', '/dashboard/dashboard.css'])
>>> doc["paths"]["/recommend"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
{'$ref': '#/components/schemas/Error'}
"""

from __future__ import annotations

from typing import Any

from stream_app.web.params import MAX_CATEGORY_CHARS, MAX_EXCLUDE, MAX_ID_CHARS, MAX_N, MAX_SESSION_ITEMS

_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}
_PROB = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_CATEGORY = {"type": "string", "minLength": 1, "maxLength": MAX_CATEGORY_CHARS}
_CATEGORY_TEXT = ("only items of this catalogue category (the list may be shorter than n); 400 while the item "
                  "catalogue holds no item")
_EXPLAIN_TEXT = "also say why each item is there: its candidate sources and the reranker's feature contributions"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(mime: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {mime: {"schema": {"type": "string"}}}}


_ERROR = _json(_ref("Error"), "bad parameters: the reason")
_UNAUTHORIZED = _json(_ref("Error"), "missing or wrong bearer token (when STREAMREC_AUTH_TOKEN is set)")


def _schemas(top_k: int) -> dict[str, Any]:
    sources = {"type": "string", "enum": ["deep", "cooccurrence", "popularity"]}
    explain = {"type": "object", "required": ["sources", "contributions"], "additionalProperties": False,
               "description": "with explain=true: why the item is in the list",
               "properties": {"sources": {"type": "array", "items": sources,
                                          "description": "the retrievers that proposed the item"},
                              "contributions": {"type": "object", "additionalProperties": {"type": "number"},
                                                "description": "the reranker's features: weight x value, "
                                                               "adding up to the score (non-zero ones)"}}}
    ranked = {"type": "object", "required": ["item_id", "score", "source"],
              "properties": {"item_id": _ID, "score": {"type": "number"}, "source": sources, "explain": explain}}
    items = {"type": "array", "maxItems": MAX_N, "items": _ref("RankedItem"),
             "description": "best first, no duplicates"}
    common = {"recommendation_id": {**_ID, "description": "unique name of this list"},
              "items": items, "model_version": _ref("ModelVersion"),
              "generated_at": {"type": "number", "description": "epoch seconds"},
              "latency_ms": {"type": "number", "minimum": 0},
              "variant": {"type": "string", "description": "the user's variant of the running experiment "
                                                            "(only while one runs, STREAMREC_EXPERIMENTS_FILE)"}}
    required = ["recommendation_id", "items", "model_version", "generated_at", "latency_ms"]
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "RankedItem": ranked,
        "ModelVersion": {"type": "object", "required": ["deep", "online"],
                         "properties": {"deep": {"type": ["string", "null"]}, "online": {"type": "integer", "minimum": 0}}},
        "PushedRecommendation": {
            "description": "the last message sent to the user on the recommendations topic, as sent "
                           "(schemas/recommendations.schema.json)",
            "type": "object", "required": ["user_id", "event_id", *required],
            "properties": {**common, "user_id": _ID, "event_id": _ID,
                           "items": {**items, "maxItems": top_k},
                           "purchase_probability": _PROB, "return_probability": _PROB}},
        "FreshList": {
            "description": "a list ranked now from the user's stored state; not taken for the user's impression",
            "type": "object", "required": ["user_id", "events_applied", *required], "additionalProperties": False,
            "properties": {**common, "user_id": _ID,
                           "events_applied": {"type": "integer", "minimum": 0,
                                              "description": "the user's events in the state (0: none yet, a cold list)"},
                           "purchase_probability": _PROB, "return_probability": _PROB}},
        "SessionRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"items": {"type": "array", "maxItems": MAX_SESSION_ITEMS, "items": _ID,
                                     "description": "the session's recent item ids, oldest first"},
                           "n": {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": top_k},
                           "exclude": {"type": "array", "maxItems": MAX_EXCLUDE, "items": _ID},
                           "category": {**_CATEGORY, "description": _CATEGORY_TEXT},
                           "explain": {"type": "boolean", "default": False, "description": _EXPLAIN_TEXT}}},
        "SessionList": {
            "type": "object", "required": ["session_items", *required], "additionalProperties": False,
            "properties": {**common, "session_items": {"type": "integer", "minimum": 0,
                                                       "description": "items of the session the context holds"}}},
        "SimilarList": {
            "type": "object", "required": ["item_id", "known", *required], "additionalProperties": False,
            "properties": {**common, "item_id": _ID,
                           "known": {"type": "boolean", "description": "whether the worker has seen the item"}}},
        "UserState": {
            "type": "object",
            "required": ["user_id", "counts", "recent_items", "purchased", "last_shown", "events_applied",
                         "last_offset", "first_ts", "last_ts", "purchase_probability", "return_probability"],
            "properties": {
                "user_id": _ID,
                "counts": {"type": "object", "required": ["view", "click", "add_to_cart", "purchase"],
                           "additionalProperties": {"type": "integer", "minimum": 0}},
                "recent_items": {"type": "array", "items": _ID}, "purchased": {"type": "array", "items": _ID},
                "last_shown": {"type": "array", "items": _ID},
                "events_applied": {"type": "integer", "minimum": 0}, "last_offset": {"type": "integer"},
                "first_ts": {"type": ["number", "null"]}, "last_ts": {"type": ["number", "null"]},
                "purchase_probability": _PROB, "return_probability": _PROB,
                "hidden": {"type": "array", "items": _ID, "description": "items the user disliked or hid"}}},
        "Health": {"type": "object", "required": ["status", "scored"],
                   "properties": {"status": {"const": "ok"}, "scored": {"type": "integer", "minimum": 0}}},
        "Ready": {"type": "object", "required": ["status", "waiting_for", "scored"],
                  "properties": {"status": {"enum": ["ready", "waiting"]},
                                 "waiting_for": {"type": "array", "items": {"type": "string"}},
                                 "scored": {"type": "integer", "minimum": 0}}},
        "Stats": {"type": "object", "description": "the dashboard's figures (see stream_app/core/stats.py)"},
    }


def _user_param() -> dict[str, Any]:
    return {"name": "user_id", "in": "path", "required": True, "schema": _ID}


def _n_param(top_k: int) -> dict[str, Any]:
    return {"name": "n", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": top_k}}


def _paths(top_k: int) -> dict[str, Any]:
    owner = " Answered by the worker that owns the user's partition (another worker forwards the request)."
    return {
        "/users/{user_id}/state": {"get": {
            "summary": "a user's stored state." + owner, "parameters": [_user_param()],
            "responses": {"200": _json(_ref("UserState"), "the state"),
                          "404": _json(_ref("Error"), "no state for the user"), "401": _UNAUTHORIZED}}},
        "/users/{user_id}/recommendations": {"get": {
            "summary": "the last list pushed to the user, or with fresh=true a list ranked now." + owner,
            "parameters": [
                _user_param(),
                {"name": "fresh", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
                 "description": "rank now from the user's state (n and exclude need it)"},
                {**_n_param(top_k), "description": "list length (fresh lists only)"},
                {"name": "exclude", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": f"comma-separated item ids never to include (fresh lists only; at most {MAX_EXCLUDE})"},
                {"name": "category", "in": "query", "required": False, "schema": _CATEGORY,
                 "description": _CATEGORY_TEXT + " (fresh lists only)"},
                {"name": "explain", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
                 "description": _EXPLAIN_TEXT + " (fresh lists only)"},
            ],
            "responses": {"200": _json({"oneOf": [_ref("PushedRecommendation"), _ref("FreshList")]},
                                       "without fresh: the last pushed message; with fresh=true: a fresh list"),
                          "400": _ERROR, "401": _UNAUTHORIZED,
                          "404": _json(_ref("Error"), "no list pushed to the user by this worker (without fresh)")}}},
        "/recommend": {"post": {
            "summary": "a list for an anonymous session, from its recent items (any worker answers)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SessionRequest")}}},
            "responses": {"200": _json(_ref("SessionList"), "the list"), "400": _ERROR, "401": _UNAUTHORIZED}}},
        "/items/{item_id}/similar": {"get": {
            "summary": "items that follow or co-occur with the item, popular items to fill (any worker answers)",
            "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": _ID}, _n_param(top_k),
                           {"name": "category", "in": "query", "required": False, "schema": _CATEGORY,
                            "description": _CATEGORY_TEXT},
                           {"name": "explain", "in": "query", "required": False,
                            "schema": {"type": "boolean", "default": False}, "description": _EXPLAIN_TEXT}],
            "responses": {"200": _json(_ref("SimilarList"), "the list"), "400": _ERROR, "401": _UNAUTHORIZED}}},
        "/openapi.json": {"get": {"summary": "this document",
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"), "401": _UNAUTHORIZED}}},
        "/dashboard": {"get": {"summary": "the live page for operators (accepts ?token=)",
                               "responses": {"200": _text("text/html", "the page"), "401": _UNAUTHORIZED}}},
        "/dashboard/dashboard.js": {"get": {"summary": "the page's script",
                                            "responses": {"200": _text("application/javascript", "script")}}},
        "/dashboard/dashboard.css": {"get": {"summary": "the page's style",
                                             "responses": {"200": _text("text/css", "style")}}},
        "/api/stats": {"get": {
            "summary": "the dashboard's figures",
            "parameters": [{"name": "scope", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": ["local", "summary", "cluster"], "default": "local"}}],
            "responses": {"200": _json(_ref("Stats"), "figures"), "400": _ERROR, "401": _UNAUTHORIZED}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (open without a token)", "security": [],
                             "responses": {"200": _text("text/plain", "exposition format")}}},
        "/health": {"get": {"summary": "liveness (open without a token)", "security": [],
                            "responses": {"200": _json(_ref("Health"), "alive")}}},
        "/ready": {"get": {"summary": "readiness: caught up with the group's item knowledge and the catalogue, "
                                      "scoring (open without a token)", "security": [],
                           "responses": {"200": _json(_ref("Ready"), "scoring"),
                                         "503": _json(_ref("Ready"), "still catching up")}}},
    }


def openapi_document(top_k: int = 10, auth: bool = False) -> dict[str, Any]:
    """The document for a worker with lists of ``top_k`` items; ``auth``: a bearer token is required."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "streamrec worker", "version": "1",
                 "description": "A worker's web server: per-user look-ups, recommendations on request, "
                                "the dashboard and probes. Bad parameters are answered 400 with {\"error\": reason}."},
        "paths": _paths(top_k),
        "components": {"schemas": _schemas(top_k),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
    if auth:
        doc["security"] = [{"bearer": []}]
    return doc
