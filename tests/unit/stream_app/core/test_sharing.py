"""Shared item knowledge without Kafka: pipelines that split a stream by user and exchange their
records learn the items' side of every event once, and as much as one pipeline given the whole stream."""

from __future__ import annotations

import random

import msgspec
import pytest

from schemas import Event
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.sharing import VERSION, BadUpdate, Entry, PeerWeights, RankerWeights, Updates, decode

TYPES = ["view", "view", "click", "add_to_cart", "purchase"]
PARTITIONS = 4


def stream(n: int = 1200, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    return [Event(event_id=f"e-{i}", user_id=f"u-{rng.randrange(60)}", item_id=f"i-{rng.randrange(40)}",
                  type=rng.choice(TYPES), ts=1000.0 + i) for i in range(n)]


def partition_of(user: str) -> int:
    return int(user.split("-")[1]) % PARTITIONS


class Node:
    """A pipeline with its own state store, fed the events of some partitions in micro-batches."""

    def __init__(self, share: bool) -> None:
        self.pipeline = Pipeline(share_items=share)
        self.store: dict[tuple[int, str], bytes] = {}
        self.offsets = dict.fromkeys(range(PARTITIONS), -1)
        self.published: list[bytes] = []

    def feed(self, events: list[Event], offsets: list[int] | None = None) -> None:
        batch = []
        for i, ev in enumerate(events):
            p = partition_of(ev.user_id)
            if offsets is None:
                self.offsets[p] += 1
                off = self.offsets[p]
            else:
                off = offsets[i]
            batch.append(Pending(ev, p, off))
        states, _ = self.pipeline.prepare(batch, lambda p, u: self.store.get((p, u)))
        self.store.update(states)
        self.pipeline.score(batch)
        out = self.pipeline.take_outgoing()
        if out is not None:
            self.published += out.encode(0.0).values()


def item_side(p: Pipeline) -> tuple[dict, dict, int]:
    r = p.ranker
    return r.popularity.counts, r.cooccurrence.totals, r.popularity.n_events


def test_two_sharing_pipelines_learn_what_one_learns_from_the_whole_stream():
    events = stream()
    alone = Node(share=False)
    a, b = Node(share=True), Node(share=True)
    offsets = dict.fromkeys(range(PARTITIONS), -1)
    for lo in range(0, len(events), 50):
        chunk = events[lo:lo + 50]
        alone.feed(chunk)
        mine = {0: ([], []), 1: ([], [])}
        for ev in chunk:  # partitions 0, 1 to worker a; 2, 3 to worker b (offsets as one topic has them)
            p = partition_of(ev.user_id)
            offsets[p] += 1
            evs, offs = mine[0 if p < 2 else 1]
            evs.append(ev)
            offs.append(offsets[p])
        a.feed(*mine[0])
        b.feed(*mine[1])
        # the shared topic: everything both published, read by both (their own records included)
        records, a.published, b.published = a.published + b.published, [], []
        for data in records:
            a.pipeline.apply_shared(decode(data))
            b.pipeline.apply_shared(decode(data))
    counts, totals, n = item_side(alone.pipeline)
    for node in (a, b):
        c, t, m = item_side(node.pipeline)
        assert m == n == len(events)
        assert c == pytest.approx(counts) and t == pytest.approx(totals)


def test_records_applied_twice_and_replays_count_once():
    events = stream(300)
    node, peer = Node(share=True), Node(share=True)
    node.feed(events[:200])
    assert node.pipeline.ranker.popularity.n_events == 200  # its own events: learned at once
    first = list(node.published)
    assert sum(node.pipeline.apply_shared(decode(d)) for d in first) == 0  # its own records come back
    assert sum(peer.pipeline.apply_shared(decode(d)) for d in first) == 200
    assert sum(peer.pipeline.apply_shared(decode(d)) for d in first) == 0  # the same records read twice
    # a replay (after a crash, or by the worker that took the partitions over) republishes the
    # events from 150 on, with the new ones after them
    offs = []
    seen = dict.fromkeys(range(PARTITIONS), -1)
    for ev in events:
        p = partition_of(ev.user_id)
        seen[p] += 1
        offs.append(seen[p])
    node.published = []
    node.feed(events[150:300], offs[150:300])
    assert node.pipeline.ranker.popularity.n_events == 300
    assert sum(peer.pipeline.apply_shared(decode(d)) for d in node.published) == 100
    assert peer.pipeline.ranker.popularity.n_events == 300


def test_a_worker_that_takes_partitions_over_skips_what_it_learned_from_the_topic():
    events = stream(200)
    before, after = Node(share=True), Node(share=True)
    before.feed(events[:120])
    for data in before.published:  # the new owner has read the old owner's records
        after.pipeline.apply_shared(decode(data))
    offs, seen = [], dict.fromkeys(range(PARTITIONS), -1)
    for ev in events:
        p = partition_of(ev.user_id)
        seen[p] += 1
        offs.append(seen[p])
    after.store = dict(before.store)  # the users' states come with the partitions (changelog)
    after.feed(events[100:200], offs[100:200])  # it resumes from an older committed offset
    assert after.pipeline.ranker.popularity.n_events == 200
    assert after.pipeline.ranker.version == 100  # its reranker learned from the events it scored


def test_checkpoints_keep_the_shared_offsets_and_positions():
    node = Node(share=True)
    node.feed(stream(100))
    for data in node.published:
        node.pipeline.apply_shared(decode(data))
    node.pipeline.shared_positions = {0: 7, 3: 2}
    restored = Pipeline(share_items=True)
    restored.restore(node.pipeline.checkpoint())
    assert restored.item_offsets.offsets == node.pipeline.item_offsets.offsets
    assert restored.shared_positions == {0: 7, 3: 2}
    for got, want in zip(item_side(restored), item_side(node.pipeline)):
        assert got == pytest.approx(want)


def test_a_checkpoint_of_a_worker_that_learned_locally_is_not_learned_again_from_the_topic():
    local = Node(share=False)
    local.feed(stream(100))
    sharing = Pipeline(share_items=True)
    sharing.restore(local.pipeline.checkpoint())
    assert sharing.item_offsets.offsets == local.pipeline.ranker_offsets
    replayed = Node(share=True)
    replayed.feed(stream(100))
    assert sum(sharing.apply_shared(decode(d)) for d in replayed.published) == 0
    assert sharing.ranker.popularity.n_events == 100


@pytest.mark.parametrize("data, reason", [
    (b"\xff\x00garbage", "not a shared-knowledge record"),
    (msgspec.msgpack.encode(["items", VERSION + 1, 0, 0.0, []]), "version"),
    (msgspec.msgpack.encode(Updates(VERSION, 0, 0.0, [Entry(1, "i-1", "like", 1.0, ())])), "unknown event type"),
    (msgspec.msgpack.encode(Updates(VERSION, 0, 0.0, [Entry(1, "", "view", 1.0, ())])), "malformed"),
    (msgspec.msgpack.encode(Updates(VERSION, -1, 0.0, [])), "negative partition"),
    (msgspec.msgpack.encode(RankerWeights(VERSION, "w", {"a": float("nan")}, 1, 0.0)), "not finite"),
])
def test_records_a_worker_did_not_write_are_refused_with_the_reason(data, reason):
    with pytest.raises(BadUpdate, match=reason):
        decode(data)


def test_silent_peers_drop_out_of_the_average():
    peers = PeerWeights("me", max_age_s=10.0)
    peers.take(RankerWeights(VERSION, "old", {"a": 100.0}, 1000, 0.0), now=0.0)
    peers.take(RankerWeights(VERSION, "new", {"a": 2.0}, 0, 0.0), now=15.0)
    merged = peers.merge({"a": 0.0}, pairs=0, now=20.0)
    assert merged == {"a": 1.0} and set(peers.latest) == {"new"}


def test_the_average_moves_a_workers_reranker():
    p = Pipeline(share_items=True)
    before = p.ranker.weights()
    target = {f: w + 1.0 for f, w in before.items()}
    p.ranker.set_weights(PeerWeights("me").merge(before, 0, 0.0) | target)
    assert p.ranker.weights() == target
