"""JSON answers of the request endpoints: a bad parameter is a 400 with its reason, never a 500.

:func:`answer` runs the part of a view that may refuse the request: :class:`~stream_app.web.params.BadRequest`
becomes ``400 {"error": reason}``; anything else is logged with its traceback and answered
``500 {"error": "internal error: <type>"}`` in one line (no traceback leaves the worker).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from faust.web import Response, View

from stream_app.web.params import BadRequest

log = logging.getLogger(__name__)


def json_bytes(view: View, doc: Any, status: int = 200) -> Response:
    """``doc`` as a JSON response (orjson: lists of floats serialize several times faster)."""
    return view.bytes(orjson.dumps(doc), content_type="application/json", status=status)


def error(view: View, reason: str, status: int = 400) -> Response:
    return json_bytes(view, {"error": reason}, status)


async def answer(view: View, produce: Callable[[], Awaitable[Any]], status: int = 200) -> Response:
    """The JSON answer ``produce`` makes; a 400 for a :class:`BadRequest`, a one-line 500 otherwise."""
    try:
        doc = await produce()
    except BadRequest as exc:
        return error(view, str(exc))
    except Exception as exc:
        log.exception("request failed")
        return error(view, f"internal error: {type(exc).__name__}", 500)
    return json_bytes(view, doc, status)
