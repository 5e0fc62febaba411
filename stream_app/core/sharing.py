"""What workers tell each other about items: the records of the shared topic, pure and apart from Kafka.

Per-user state is partitioned by user, but popularity and co-occurrence are properties of items:
learned only from its own partitions, each of N workers would know about 1/N of the stream. So
every worker publishes, for each event it consumes, what the item-side models learn from it (the
item, the event's type and time, and the user's latest items before it: that is all
:meth:`models.rerank.online.OnlineRanker.learn_items` reads); it learns that from its own events
at once and from the other workers' through the shared topic. All workers then hold the same
item knowledge, built from every event, whichever worker consumed it.

A record carries the events partition and offset of each event, so a worker applies each event
once however often it is published (a replay after a crash or a rebalance publishes it again):
an entry is applied only when its offset is above the highest one applied for its partition (see
:class:`AppliedOffsets`). Records of one events partition go to one partition of the shared
topic, so they arrive in the order they were published.

>>> from schemas import Event
>>> ev = Event(event_id="e-1", user_id="u-1", item_id="i-2", type="click", ts=10.0)
>>> batch = OutgoingUpdates(window=2)
>>> batch.add(3, 41, ev, ("i-7", "i-8", "i-9"))
>>> [(p, decode(data).entries[0].recent) for p, data in batch.encode(sent_at=1.0).items()]
[(3, ('i-8', 'i-9'))]
>>> applied = AppliedOffsets()
>>> applied.take(decode(batch.encode(1.0)[3])), applied.take(decode(batch.encode(1.0)[3]))
([Entry(offset=41, item_id='i-2', type='click', ts=10.0, recent=('i-8', 'i-9'))], [])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from schemas import Event

VERSION = 1
TYPES = ("view", "click", "add_to_cart", "purchase")
_MAX_ITEM = 128


class BadUpdate(ValueError):
    """A record of the shared topic that is not one a worker wrote (it is skipped and counted)."""


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """One event as the item-side models learn it."""

    offset: int
    item_id: str
    type: str
    ts: float
    recent: tuple[str, ...]
    """The user's latest items before the event, oldest first (at most the models' window)."""


class Updates(msgspec.Struct, array_like=True, frozen=True, tag="items"):
    """One record of the shared topic: the entries of one events partition from one micro-batch."""

    version: int
    partition: int
    sent_at: float
    """Wall-clock time of publication (to measure how long other workers take to learn it)."""
    entries: list[Entry]


class RankerWeights(msgspec.Struct, array_like=True, frozen=True, tag="ranker"):
    """A worker's reranker weights, published every ``STREAMREC_SHARE_WEIGHTS_S`` (see :class:`PeerWeights`)."""

    version: int
    worker: str
    weights: dict[str, float]
    pairs: int
    """Pairs the worker learned since its previous record (how much these weights are worth)."""
    sent_at: float


_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Updates | RankerWeights] = msgspec.msgpack.Decoder(Updates | RankerWeights)


def encode_weights(rec: RankerWeights) -> bytes:
    return _encoder.encode(rec)


def decode(data: bytes) -> Updates | RankerWeights:
    """Parse and check one record; :class:`BadUpdate` says why one is refused."""
    try:
        up: Updates | RankerWeights = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadUpdate(f"not a shared-knowledge record: {exc}") from None
    if up.version != VERSION:
        raise BadUpdate(f"record version {up.version}, this worker reads version {VERSION}: upgrade every worker")
    if isinstance(up, RankerWeights):
        if not all(math.isfinite(w) for w in up.weights.values()) or up.pairs < 0:
            raise BadUpdate(f"ranker weights of {up.worker!r} are not finite")
        return up
    if up.partition < 0:
        raise BadUpdate(f"negative partition {up.partition}")
    for e in up.entries:
        if e.type not in TYPES:
            raise BadUpdate(f"unknown event type {e.type!r} at offset {e.offset}")
        if not e.item_id or len(e.item_id) > _MAX_ITEM or not math.isfinite(e.ts) or e.offset < 0:
            raise BadUpdate(f"malformed entry at offset {e.offset}")
    return up


class OutgoingUpdates:
    """The entries of one micro-batch, grouped by events partition, ready to publish."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.by_partition: dict[int, list[Entry]] = {}

    def add(self, partition: int, offset: int, event: Event, recent: Sequence[str]) -> None:
        lst = self.by_partition.get(partition)
        if lst is None:
            lst = self.by_partition[partition] = []
        lst.append(Entry(offset, event.item_id, event.type, event.ts, tuple(recent[-self.window:])))

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_partition.values())

    def encode(self, sent_at: float) -> dict[int, bytes]:
        """One record per events partition (keyed by it when published)."""
        return {p: _encoder.encode(Updates(VERSION, p, sent_at, entries)) for p, entries in self.by_partition.items()}


class AppliedOffsets:
    """The highest offset whose event the item-side models learned, per events partition."""

    def __init__(self, offsets: dict[int, int] | None = None) -> None:
        self.offsets: dict[int, int] = dict(offsets or {})

    def accept(self, partition: int, offset: int) -> bool:
        """Whether the event at ``offset`` is new (and count it as applied from now on)."""
        if offset > self.offsets.get(partition, -1):
            self.offsets[partition] = offset
            return True
        return False

    def take(self, up: Updates) -> list[Entry]:
        """The entries of ``up`` not applied yet, in order; they count as applied from now on."""
        last = start = self.offsets.get(up.partition, -1)
        fresh = []
        for e in up.entries:
            if e.offset > last:
                fresh.append(e)
                last = e.offset
        if last != start:
            self.offsets[up.partition] = last
        return fresh


class PeerWeights:
    """The latest reranker weights of the other workers, and their average with this worker's.

    Each worker learns its reranker from the impressions of its own users (only it holds them)
    and publishes the weights with the number of pairs they were learned from since its previous
    record. Every worker then sets its weights to the average of its own and its peers' recent
    ones, weighted by those pair counts (plus one, so an idle worker still counts a little): all
    workers learn from every impression, through the average. A peer silent for ``max_age_s`` is
    left out (it stopped or left the group).

    >>> peers = PeerWeights("w1")
    >>> peers.take(RankerWeights(VERSION, "w2", {"a": 3.0}, 3, 0.0), now=0.0)
    True
    >>> peers.take(RankerWeights(VERSION, "w1", {"a": 9.0}, 9, 0.0), now=0.0)  # our own record
    False
    >>> peers.merge({"a": 1.0, "b": 2.0}, pairs=0, now=1.0)   # (1 * own + 4 * w2's) / 5
    {'a': 2.6, 'b': 0.4}
    """

    def __init__(self, worker: str, max_age_s: float = 60.0) -> None:
        self.worker = worker
        self.max_age_s = max_age_s
        self.latest: dict[str, tuple[dict[str, float], int, float]] = {}

    def take(self, rec: RankerWeights, now: float) -> bool:
        """Remember a peer's record (False for this worker's own)."""
        if rec.worker == self.worker:
            return False
        self.latest[rec.worker] = (dict(rec.weights), rec.pairs, now)
        return True

    def merge(self, own: dict[str, float], pairs: int, now: float) -> dict[str, float]:
        """The pair-weighted average of ``own`` and the recent peers' weights."""
        members = [(own, pairs + 1)]
        for worker, (w, n, at) in list(self.latest.items()):
            if now - at > self.max_age_s:
                del self.latest[worker]
            else:
                members.append((w, n + 1))
        if len(members) == 1:
            return dict(own)
        total = float(sum(n for _, n in members))
        names = sorted({f for w, _ in members for f in w})
        return {f: sum(w.get(f, 0.0) * n for w, n in members) / total for f in names}
