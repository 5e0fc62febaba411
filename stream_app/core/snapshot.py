"""Checkpoints of a :class:`~stream_app.core.pipeline.Pipeline`: its online models and the offsets they learned.

Encoded with msgpack in steps (:func:`encode_steps`), so a worker gives its event loop a turn
between steps; :func:`restore_into` puts one back.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import msgspec

from models.engagement import PurchasePropensity, ReturnPredictor
from models.hybrid import HybridRecommender
from stream_app.core.sharing import AppliedOffsets

if TYPE_CHECKING:
    from stream_app.core.pipeline import Pipeline


class Checkpoint(msgspec.Struct):
    ranker: bytes
    purchase: bytes
    returns: bytes
    ranker_offsets: dict[int, int]
    observe_offsets: dict[int, int]
    saved_at: float
    item_offsets: dict[int, int] = msgspec.field(default_factory=dict)
    """Per events partition, the highest offset the item-side models learned (shared learning)."""
    shared_positions: dict[int, int] = msgspec.field(default_factory=dict)
    items_shared: bool = False
    """Whether the items' side was learned from the shared topic (else locally, up to ``ranker_offsets``)."""
    events_topic: int = 0
    """The ``events`` topic (:func:`~stream_app.core.state.topic_identity`) the offsets above count in."""


def offsets_of(p: Pipeline) -> dict[str, Any]:
    """Copies of the offsets a checkpoint of ``p`` records."""
    return {
        "ranker_offsets": dict(p.ranker_offsets),
        "observe_offsets": dict(p.observe_offsets),
        "item_offsets": dict(p.item_offsets.offsets),
        "shared_positions": dict(p.shared_positions),
        "events_topic": p.events_topic,
    }


def encode_steps(p: Pipeline, offsets: dict[str, Any]) -> Generator[None, None, bytes]:
    """The checkpoint of ``p`` with ``offsets`` (:func:`offsets_of`), yielding between bounded steps."""
    ranker = yield from p.ranker.to_bytes_steps()
    purchase = p.purchase.to_bytes()
    yield None
    returns = p.returns.to_bytes()
    yield None
    return msgspec.msgpack.encode(
        Checkpoint(ranker=ranker, purchase=purchase, returns=returns, saved_at=time.time(),
                   items_shared=p.share_items, **offsets)
    )


def restore_into(p: Pipeline, data: bytes) -> None:
    """Replace ``p``'s online models and offsets by those of checkpoint ``data``; the deep model
    in service and ``p``'s serving settings (pool, history, item bound) stay."""
    cp = msgspec.msgpack.decode(data, type=Checkpoint)
    deep, retriever = p.ranker.deep, p.ranker.retriever
    p.ranker = HybridRecommender.from_bytes(cp.ranker)
    p.ranker.deep_pool, p.ranker.deep_history = p.deep_pool, p.deep_history
    p.ranker.set_max_items(p.max_items)
    if deep is not None:
        p.ranker.set_deep(deep, retriever)
    p.purchase = PurchasePropensity.from_bytes(cp.purchase)
    p.returns = ReturnPredictor.from_bytes(cp.returns)
    p.ranker_offsets = dict(cp.ranker_offsets)
    p.observe_offsets = dict(cp.observe_offsets)
    # a checkpoint of a worker that learned the items' side locally learned it up to ranker_offsets
    p.item_offsets = AppliedOffsets(cp.item_offsets if cp.items_shared else cp.ranker_offsets)
    p.shared_positions = dict(cp.shared_positions)
    p.events_topic = cp.events_topic
