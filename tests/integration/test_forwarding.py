"""Per-user requests forwarded to the partition's owner carry the caller's token only to allowed hosts.

Two real workers share the partitions, with a bearer token set. ``w2`` advertises 127.0.0.2 (a
loopback address, but not one the allow-list names), ``w1`` the usual 127.0.0.1. Asked about a
user that ``w2`` owns, ``w1`` refuses to pass the token on (502 naming ``STREAMREC_PEER_HOSTS``);
asked about a user that ``w1`` owns, ``w2`` forwards (127.0.0.1 is loopback, always allowed) and the
owner's own answer comes back. A forwarded request is marked and never forwarded twice.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import orjson
import pytest
from kafka.partitioner.default import murmur2

from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration
TOKEN = {"Authorization": "Bearer s3cret"}


class HostWorker(Worker):
    """A worker whose web server binds and advertises ``host``."""

    def __init__(self, pipeline, name: str, host: str, **env: str) -> None:
        super().__init__(pipeline, name, **env)
        self.host = host
        self.env["STREAMREC_WEB_HOST"] = host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def ask(w: Worker, path: str, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(w.url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


def owned(w: Worker) -> set[int]:
    status, doc = ask(w, "/api/stats?scope=summary", TOKEN)
    return set(doc.get("partitions") or []) if status == 200 else set()


def user_on(parts: set[int], n: int) -> str:
    return next(u for u in (f"u-{k}" for k in range(10_000))
                if (murmur2(u.encode()) & 0x7FFFFFFF) % n in parts)


def test_token_goes_only_to_allowed_owners(pipeline, workers):
    n = pipeline.partitions
    w1 = Worker(pipeline, "w1", STREAMREC_AUTH_TOKEN="s3cret")
    w2 = HostWorker(pipeline, "w2", "127.0.0.2", STREAMREC_AUTH_TOKEN="s3cret")
    workers.extend([w1.start(), w2.start()])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        a, b = owned(w1), owned(w2)
        if a and b and a | b == set(range(n)) and not a & b:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the two workers did not split the partitions")
    on_w1, on_w2 = user_on(a, n), user_on(b, n)

    # w1 -> w2: 127.0.0.2 is not on w1's allow-list, so the token stays home
    status, doc = ask(w1, f"/users/{on_w2}/state", TOKEN)
    assert status == 502, doc
    assert "STREAMREC_PEER_HOSTS" in doc["error"] and "127.0.0.2" in doc["error"]
    assert "not forwarding" in w1.log_text()

    # w2 -> w1: loopback is allowed; the owner's own answer (no state yet) comes back, token checked there
    status, doc = ask(w2, f"/users/{on_w1}/state", TOKEN)
    assert status == 404 and on_w1 in doc["error"], doc
    # a wrong token is refused where it arrives, before any forwarding
    assert ask(w2, f"/users/{on_w1}/state", {"Authorization": "Bearer nope"})[0] == 401
    # a request marked as forwarded that reaches a non-owner is not sent on again
    status, doc = ask(w2, f"/users/{on_w1}/state", {**TOKEN, "X-Streamrec-Forwarded": "1"})
    assert status == 503 and "rebalanced" in doc["error"], doc
    # the owner answers directly as before
    assert ask(w2, f"/users/{on_w2}/state", TOKEN)[0] == 404
