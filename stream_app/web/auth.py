"""Bearer-token checks for the worker's web views (one place; every view but /metrics, /health and /ready)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

Handler = Callable[..., Awaitable[Any]]


def bearer_ok(token: str | None, header: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (always, when no token is set).

    >>> bearer_ok(None, ""), bearer_ok("s3", "Bearer s3"), bearer_ok("s3", "Bearer nope")
    (True, True, False)
    """
    if not token:
        return True
    return same_secret(header, f"Bearer {token}")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison; a value that is not valid text (undecodable bytes) never matches.

    >>> same_secret("Bearer " + chr(0xDCFF), "Bearer s3"), same_secret("s3", "s3")
    (False, True)
    """
    try:
        raw = given.encode()
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(raw, expected.encode())


def authorized(token: str | None) -> Callable[[Handler], Handler]:
    """Decorate a view method so it requires the bearer token (when one is configured)."""

    def decorate(view: Handler) -> Handler:
        @wraps(view)
        async def wrapper(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if not bearer_ok(token, request.headers.get("Authorization", "")):
                return self.json({"error": "missing or wrong bearer token"}, status=401)
            return await view(self, request, *args, **kwargs)

        return wrapper

    return decorate


def authorized_page(token: str | None) -> Callable[[Handler], Handler]:
    """Like :func:`authorized`, also accepting the token as ``?token=...`` (so a browser can open a page)."""

    def decorate(view: Handler) -> Handler:
        guarded = authorized(token)(view)

        @wraps(view)
        async def wrapper(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            given = request.query.get("token")
            if token and given is not None and same_secret(given, token):
                return await view(self, request, *args, **kwargs)
            return await guarded(self, request, *args, **kwargs)

        return wrapper

    return decorate
