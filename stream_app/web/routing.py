"""Per-user requests answered by the worker that owns the user's partition.

A worker asked about a user whose partition another group member owns forwards the request
there, as Faust's ``table_route`` does, with three differences:

* the caller's ``Authorization`` header (and nothing else of the caller's headers but
  ``Accept``) goes only to an owner whose advertised host is allowed
  (:func:`stream_app.web.peers.peer_allowed`: ``STREAMREC_PEER_HOSTS``, this worker's own host,
  loopback); any other owner gets nothing and the caller a ``502`` naming the setting to change;
* a forwarded request carries ``X-Streamrec-Forwarded``; a worker that receives one but does not
  own the user either (the assignment moved in between) answers ``503`` instead of forwarding
  again, so a request never travels in a circle;
* an owner that cannot be reached is a ``502`` with the reason, in one line.

>>> forwarded_headers({"Authorization": "Bearer s3", "Cookie": "x", "Accept": "*/*"}, token_ok=True)
{'Authorization': 'Bearer s3', 'Accept': '*/*', 'X-Streamrec-Forwarded': '1'}
>>> forwarded_headers({"Authorization": "Bearer s3"}, token_ok=False)
{'X-Streamrec-Forwarded': '1'}
>>> same_node(URL("http://127.0.0.1:6066/"), URL("http://127.0.0.1:6066"))
True
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from typing import Any

import aiohttp
from faust.types import AppT
from faust.types.tables import CollectionT
from faust.web import Request, Response, View
from yarl import URL

from stream_app.web.answers import error

log = logging.getLogger(__name__)

FORWARDED = "X-Streamrec-Forwarded"
FORWARD_TIMEOUT_S = 10.0
Handler = Callable[..., Awaitable[Response]]


def forwarded_headers(headers: Mapping[str, str], token_ok: bool) -> dict[str, str]:
    """The headers sent on to the owner: the token only to an allowed host, ``Accept``, the mark."""
    out = {}
    if token_ok and "Authorization" in headers:
        out["Authorization"] = headers["Authorization"]
    if "Accept" in headers:
        out["Accept"] = headers["Accept"]
    out[FORWARDED] = "1"
    return out


def same_node(a: URL, b: URL) -> bool:
    """Whether two web URLs name the same host and port."""
    return ((a.host or "").lower(), a.port or 80) == ((b.host or "").lower(), b.port or 80)


def owner_route(app: AppT, table: CollectionT, match_info: str,
                allowed: Callable[[str], bool]) -> Callable[[Handler], Handler]:
    """Decorate a view method so the owner of ``request.match_info[match_info]`` answers it."""

    def decorate(fun: Handler) -> Handler:
        @wraps(fun)
        async def routed(view: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            key = request.match_info[match_info]
            try:
                owner = app.router.key_store(table.name, key)
            except KeyError:  # no assignment known yet
                return error(view, "no worker owns this user's partition yet (the group is rebalancing); "
                                   "retry shortly", 503)
            if same_node(owner, URL(str(app.conf.canonical_url))):
                return await fun(view, request, *args, **kwargs)
            if request.headers.get(FORWARDED):
                return error(view, f"forwarded here, but {owner} owns this user's partition now "
                                   "(the group rebalanced); retry", 503)
            token_ok = allowed(str(owner))
            if not token_ok and request.headers.get("Authorization"):
                log.warning("not forwarding a request for %s to %s: host not in STREAMREC_PEER_HOSTS",
                            request.url.path, owner)
                return error(view, f"the owner of this user's partition, {owner}, is not in "
                                   "STREAMREC_PEER_HOSTS: the request was not forwarded; add its host "
                                   "there or ask that worker directly", 502)
            return await forward(app.http_client, request, owner, forwarded_headers(request.headers, token_ok),
                                 view)

        return routed

    return decorate


async def forward(session: aiohttp.ClientSession, request: Request, owner: URL,
                  headers: dict[str, str], view: View) -> Response:
    """Ask ``owner`` the same path and query; its status, body and content type come back."""
    url = URL(str(request.url)).with_scheme(owner.scheme or "http").with_host(owner.host or "") \
        .with_port(owner.port)
    try:
        async with session.request(request.method, url, headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as resp:
            body = await resp.read()
            return view.bytes(body, content_type=resp.content_type, status=resp.status)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("forwarding %s to %s failed: %s", request.url.path, owner, exc)
        return error(view, f"the owner of this user's partition, {owner}, did not answer: "
                           f"{type(exc).__name__}", 502)
