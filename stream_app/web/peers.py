"""Which group members a worker may pass the caller's bearer token to.

A member of the consumer group advertises its own web URL; anyone who can join the group can
advertise any URL. The caller's token therefore goes only to hosts on an allow-list
(``STREAMREC_PEER_HOSTS``, shell-style patterns), to this worker's own host and to loopback: the
dashboard's cluster view (:mod:`stream_app.web.dashboard`) and the forwarding of per-user requests
to the partition's owner (:mod:`stream_app.web.routing`) both ask here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def peer_allowed(patterns: str, own_host: str) -> Callable[[str], bool]:
    """Whether a peer's URL may be asked (with the caller's token): its host matches a pattern.

    >>> ok = peer_allowed("worker-*, 10.0.0.7", own_host="worker-1")
    >>> [ok(u) for u in ("http://worker-3:6066", "http://10.0.0.7:6066", "http://evil.example:6066")]
    [True, True, False]
    >>> peer_allowed("", own_host="box")("http://127.0.0.1:6067")
    True
    """
    allowed = [p.strip().lower() for p in patterns.split(",") if p.strip()]
    allowed += [own_host.lower(), *LOOPBACK]

    def ok(url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        return any(fnmatch.fnmatchcase(host, p) for p in allowed)

    return ok
