"""Scenario 3: fuzzed records mixed into valid traffic.

Every kind of bad record the contract must survive, generated from a valid event so it looks
realistic. Records of kind ``extra_fields`` are valid by contract (unknown fields are ignored):
they must be processed, not dead-lettered.

>>> import random
>>> recs = fuzzed_records([{"event_id": "e", "user_id": "u", "item_id": "i", "type": "view", "ts": 1.0}] * 30,
...                       random.Random(0))
>>> sorted({kind for kind, _, _, _ in recs}) == sorted(KINDS)
True
>>> all(valid == (kind == "extra_fields") for kind, _, _, valid in recs)
True
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from stream_app.kafka import KafkaTarget
from stream_app.ops.reliability.harness import (
    Topics,
    WorkerProc,
    compare_state,
    expected_counts,
    make_event,
    produce,
    read_records,
    wait_for_ids,
)

KINDS = ("malformed_json", "wrong_types", "nan_inf", "non_utf8", "empty", "oversized", "missing_field",
         "extra_fields", "huge_ids", "tombstone", "far_future")


def _one(kind: str, ev: dict[str, Any], rng: random.Random) -> tuple[bytes | None, bytes | None, bool]:
    """(key, value, valid) of one record of ``kind`` derived from the valid event ``ev``."""
    key = ev["user_id"].encode()
    raw = orjson.dumps(ev)
    if kind == "malformed_json":
        return key, rng.choice([raw[: len(raw) // 2], raw.replace(b":", b"=", 1), b"{not json", raw + b"}",
                                b"[1, 2", b'{"event_id": "x",}']), False
    if kind == "wrong_types":
        field, value = rng.choice([("ts", "yesterday"), ("type", ["click"]), ("user_id", 42), ("item_id", None),
                                   ("price", "cheap"), ("event_id", {"a": 1}), ("ts", True)])
        bad = dict(ev, **{field: value})
        return (key if field != "user_id" else b"42"), orjson.dumps(bad), False
    if kind == "nan_inf":
        token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
        target = rng.choice([b"ts", b"price"])
        body = raw[:-1] + b',"' + target + b'":' + token + b"}" if target == b"price" else \
            raw.replace(orjson.dumps(ev["ts"]), token, 1)
        return key, body, False
    if kind == "non_utf8":
        return key, rng.choice([b"\xff\xfe\xfd", raw.replace(b'"i-', b'"\xc3\x28-', 1), b"\x80" + raw]), False
    if kind == "empty":
        return key, b"", False
    if kind == "oversized":
        return key, raw[:-1] + b',"pad":"' + b"x" * (64 * 1024 + rng.randrange(1, 4096)) + b'"}', False
    if kind == "missing_field":
        field = rng.choice(["event_id", "user_id", "item_id", "type", "ts"])
        return key, orjson.dumps({k: v for k, v in ev.items() if k != field}), False
    if kind == "extra_fields":
        return key, orjson.dumps(dict(ev, extra=rng.random(), nested={"deep": [1, 2, 3]}, tags=["a", "b"])), True
    if kind == "huge_ids":
        which = rng.choice(["user", "item", "event", "numeric"])
        if which == "numeric":
            return key, raw.replace(orjson.dumps(ev["user_id"]), b"1" + b"0" * 40, 1), False
        big = "z" * rng.choice([129, 1000, 20_000])
        field = {"user": "user_id", "item": "item_id", "event": "event_id"}[which]
        bad = dict(ev, **{field: big})
        return bad["user_id"].encode()[:1000], orjson.dumps(bad), False
    if kind == "tombstone":
        return key, None, False
    if kind == "far_future":  # valid JSON and schema, but dated centuries ahead of the worker's clock
        return key, orjson.dumps(dict(ev, ts=rng.choice([4_102_444_800.0, 253_402_300_799.0, 1e15]))), False
    raise ValueError(f"unknown fuzz kind {kind!r}")


def fuzzed_records(valid: list[dict[str, Any]], rng: random.Random) -> list[tuple[str, bytes | None, bytes | None, bool]]:
    """One fuzzed record per valid event given, cycling through :data:`KINDS`: ``(kind, key, value, valid)``."""
    out = []
    for i, ev in enumerate(valid):
        kind = KINDS[i % len(KINDS)]
        key, value, ok = _one(kind, ev, rng)
        out.append((kind, key, value, ok))
    return out


def fuzz_scenario(bootstrap: KafkaTarget, root: Path, n_events: int = 20_000, share: float = 0.05, n_users: int = 200,
                  partitions: int = 4, seed: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Produce ``n_events`` records of which ``share`` are fuzzed; check DLQ, output and state."""
    rng = random.Random(seed)
    n_fuzz = max(len(KINDS), round(n_events * share))
    run = f"fz{seed}"
    valid = [make_event(run, i, rng, n_users, 2000) for i in range(n_events - n_fuzz)]
    fuzz = fuzzed_records([make_event(run + "x", i, rng, n_users, 2000) for i in range(n_fuzz)], rng)
    positions = sorted(rng.sample(range(n_events), n_fuzz))
    records: list[tuple[bytes | None, bytes | None]] = []
    vi = fi = 0
    for pos in range(n_events):
        if fi < len(positions) and positions[fi] == pos:
            _, k, v, _ = fuzz[fi]
            records.append((k, v))
            fi += 1
        else:
            ev = valid[vi]
            records.append((ev["user_id"].encode(), orjson.dumps(ev)))
            vi += 1
    accepted = valid + [orjson.loads(v) for kind, _, v, ok in fuzz if ok and v is not None]
    injected = Counter(kind for kind, _, _, ok in fuzz if not ok)

    topics = Topics()
    topics.create(bootstrap, partitions)
    w = WorkerProc(bootstrap, topics, root, "fuzz", partitions, STREAMREC_LOG_LEVEL="error").start()
    t0 = time.monotonic()
    try:
        produce(bootstrap, topics.events, records)
        got, n_msgs = wait_for_ids(bootstrap, topics.recommendations, {e["event_id"] for e in accepted}, 180)
        elapsed = time.monotonic() - t0
        dlq = read_records(bootstrap, topics.dlq, sum(injected.values()), timeout=30)
        state = compare_state([w], expected_counts(accepted), timeout=20)
        internal = sum(1 for r in dlq if dict(r.headers).get("error", b"").startswith(b"internal error"))
        alive = w.alive
    finally:
        w.stop()
    return {
        "records": n_events, "fuzzed": n_fuzz, "share": share,
        "injected_invalid": sum(injected.values()), "injected_by_kind": dict(sorted(injected.items())),
        "valid_with_extra_fields": sum(1 for _, _, _, ok in fuzz if ok),
        "dlq_records": len(dlq), "dlq_internal_errors": internal,
        "valid_events": len(accepted), "valid_processed": len(got & {e["event_id"] for e in accepted}),
        "recommendation_messages": n_msgs,
        "worker_crashes": 0 if alive else 1, "seconds": round(elapsed, 1),
        "users_mismatched": state["users_mismatched"], "lost_updates": state["lost_updates"],
        "double_applied_updates": state["double_applied_updates"],
    }
