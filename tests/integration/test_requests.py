"""Recommendations on request from real worker processes on the real broker.

Two workers share the partitions. A fresh list is the pushed one while nothing changed, follows
what other users taught the owner since, and is answered the same through either worker (the
non-owner forwards); anonymous sessions, similar items and the 400s answer as documented, and
every answer validates against the worker's own ``/openapi.json``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import jsonschema
import orjson
import pytest
import referencing
from kafka.partitioner.default import murmur2

from stream_app.ops.testbed import event, send_events
from stream_app.ops.testbed import read_records as read_all
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration


def partition(key: str, n: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % n


def post(w: Worker, path: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(w.url + path, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def owned(w: Worker) -> set[int]:
    status, body = w.get("/api/stats?scope=summary")
    return set(orjson.loads(body).get("partitions") or []) if status == 200 else set()


def wait_for(check, timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class Answers:
    """Every answer seen, by (path template, method, status), to validate against the document."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int, bytes]] = []

    def get(self, w: Worker, template: str, path: str) -> tuple[int, Any]:
        status, body = w.get(path)
        self.seen.append((template, "get", status, body))
        return status, orjson.loads(body) if body.startswith((b"{", b"[")) else body

    def post(self, w: Worker, template: str, path: str, doc: Any) -> tuple[int, Any]:
        status, body = post(w, path, doc if isinstance(doc, bytes) else orjson.dumps(doc))
        self.seen.append((template, "post", status, body))
        return status, orjson.loads(body)


def items(doc: dict) -> list[str]:
    return [i["item_id"] for i in doc["items"]]


def test_recommendations_on_request(pipeline, workers, kafka):
    n = pipeline.partitions
    w1, w2 = Worker(pipeline, "w1"), Worker(pipeline, "w2")
    workers.extend([w1.start(), w2.start()])
    split = wait_for(lambda: (lambda a, b: (a, b) if a and b and a | b == set(range(n)) and not a & b else None)(
        owned(w1), owned(w2)), 90, "the two workers to split the partitions")
    user = "u-req"
    part = partition(user, n)
    owner, other = (w1, w2) if part in split[0] else (w2, w1)
    # users on the user's partition: what they teach, the owner learns
    mates = [u for u in (f"m-{k}" for k in range(400)) if partition(u, n) == part][:30]
    assert len(mates) == 30

    warm = []
    for k, m in enumerate(mates):  # a popular head and a -> b sequences
        warm += [event(len(warm), m, "a"), event(len(warm) + 1, m, "b"), event(len(warm) + 2, f"x-{k}", f"p-{k % 5}")]
    send_events(kafka, pipeline.events, warm)
    assert len(read_all(kafka, pipeline.recommendations, len(warm), timeout=90, linger=0.5)) == len(warm)
    send_events(kafka, pipeline.events, [event(1000, user, "q")])  # nobody has followed q yet
    ans = Answers()
    status, pushed = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
        ans.get(other, "/users/{user_id}/recommendations", f"/users/{user}/recommendations")), 30, "the pushed list")
    assert pushed["event_id"] == "e-1000" and pushed["recommendation_id"]

    # 1. nothing changed since the push: the fresh list is the pushed one, from either worker
    fresh_path = f"/users/{user}/recommendations?fresh=true"
    for w in (owner, other):
        status, fresh = ans.get(w, "/users/{user_id}/recommendations", fresh_path)
        assert status == 200, fresh
        assert items(fresh) == items(pushed) and fresh["events_applied"] == 1
        assert fresh["recommendation_id"] != pushed["recommendation_id"]
    # 2. others now go q -> z on the user's partition: the fresh list follows, the pushed one stays
    follow = []
    for m in mates[:20]:
        follow += [event(2000 + len(follow), m, "q"), event(2001 + len(follow), m, "z", "purchase")]
    send_events(kafka, pipeline.events, follow)
    read_all(kafka, pipeline.recommendations, len(warm) + 1 + len(follow), timeout=60, linger=0.5)

    def fresh_z() -> dict | None:
        status, doc = ans.get(other, "/users/{user_id}/recommendations", fresh_path + "&n=3")
        return doc if status == 200 and items(doc)[:1] == ["z"] else None

    fresh = wait_for(fresh_z, 30, "the fresh list to follow q -> z")
    assert len(fresh["items"]) == 3 and items(fresh) != items(pushed)[:3]
    assert ans.get(owner, "/users/{user_id}/recommendations", f"/users/{user}/recommendations")[1] == pushed
    status, without_z = ans.get(owner, "/users/{user_id}/recommendations", fresh_path + "&exclude=z,a")
    assert status == 200 and "z" not in items(without_z) and "a" not in items(without_z)
    assert "q" not in items(without_z)  # the item just touched, as in pushed lists
    status, cold = ans.get(owner, "/users/{user_id}/recommendations", "/users/nobody-yet/recommendations?fresh=true")
    assert status == 200 and cold["events_applied"] == 0 and cold["items"]

    # 3. anonymous sessions and similar items (on the owner, which learned q -> z)
    status, session = ans.post(owner, "/recommend", "/recommend", {"items": ["a", "q"], "n": 4, "exclude": ["b"]})
    assert status == 200 and items(session)[0] == "z" and not {"q", "b"} & set(items(session))
    status, similar = ans.get(owner, "/items/{item_id}/similar", "/items/q/similar?n=4")
    assert status == 200 and items(similar)[0] == "z" and similar["items"][0]["source"] == "cooccurrence"
    assert similar["known"] is True and "q" not in items(similar) and len(similar["items"]) == 4
    status, explained = ans.get(other, "/users/{user_id}/recommendations", fresh_path + "&n=3&explain=true")
    assert status == 200 and len(explained["items"]) == 3
    for it in explained["items"]:  # why each item is there: its sources, and contributions adding up to its score
        assert it["source"] in it["explain"]["sources"]
        assert abs(sum(it["explain"]["contributions"].values()) - it["score"]) < 1e-3
    status, explained = ans.post(owner, "/recommend", "/recommend", {"items": ["a", "q"], "n": 2, "explain": True})
    assert status == 200 and all("explain" in it for it in explained["items"])

    # 4. bad parameters: 400 with a reason, from either worker
    bad_gets = [("/users/{user_id}/recommendations", f"/users/{user}/recommendations?fresh=true&n={v}")
                for v in ("0", "101", "x", "-1")]
    bad_gets += [("/users/{user_id}/recommendations", f"/users/{user}/recommendations?{q}") for q in (
        "fresh=perhaps", "n=5", "fresh=true&category=shoes", "fresh=true&nn=3",
        "fresh=true&exclude=" + "x" * 200)]
    bad_gets += [("/items/{item_id}/similar", "/items/q/similar?n=0"), ("/items/{item_id}/similar", "/items/q/similar?k=3"),
                 ("/items/{item_id}/similar", "/items/" + "y" * 129 + "/similar")]
    for w in (owner, other):
        for template, path in bad_gets:
            status, doc = ans.get(w, template, path)
            assert status == 400 and isinstance(doc.get("error"), str) and doc["error"], (path, status, doc)
        for body in (b"not json", b"[]", b'{"items": "a"}', b'{"items": [], "n": 0}', b'{"items": [1]}',
                     b'{"items": [], "category": "c"}', b'{"items": [], "extra": 1}'):
            status, doc = ans.post(w, "/recommend", "/recommend", body)
            assert status == 400 and doc["error"], (body, status, doc)
    status, doc = ans.get(owner, "/users/{user_id}/recommendations", "/users/nobody/recommendations")
    assert status == 404 and doc["error"]
    for template, path in [("/users/{user_id}/state", f"/users/{user}/state"), ("/health", "/health"),
                           ("/ready", "/ready"), ("/api/stats", "/api/stats")]:
        assert ans.get(owner, template, path)[0] == 200

    # 5. every pushed message carries its own recommendation_id
    recs = read_all(kafka, pipeline.recommendations, len(warm) + 1 + len(follow), timeout=30, linger=0.5)
    ids = [orjson.loads(r.value)["recommendation_id"] for r in recs]
    assert len(recs) == len(warm) + 1 + len(follow) and len(set(ids)) == len(ids)

    # 6. every answer above validates against the worker's own OpenAPI document
    status, body = owner.get("/openapi.json")
    assert status == 200
    doc = json.loads(body)
    registry = referencing.Registry().with_resource("urn:worker", referencing.Resource.from_contents(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **doc}))
    checked = 0
    for template, method, status, raw in ans.seen:
        responses = doc["paths"][template][method]["responses"]
        assert str(status) in responses, (template, method, status)
        content = responses[str(status)].get("content", {})
        if "application/json" not in content:
            continue
        pointer = "urn:worker#/paths/" + urllib.parse.quote(template.replace("~", "~0").replace("/", "~1"), safe="~") \
            + f"/{method}/responses/{status}/content/application~1json/schema"
        jsonschema.Draft202012Validator({"$ref": pointer}, registry=registry).validate(orjson.loads(raw))
        checked += 1
    assert checked == len(ans.seen) > 40
