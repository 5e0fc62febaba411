"""Pure functions between the agents and the models: no Faust, no I/O.

>>> from schemas import Event
>>> from stream_app.state import UserState
>>> ctx = to_context("u-1", UserState(recent=["a", "b"], purchased=["b"]))
>>> ctx.recent_items, sorted(ctx.purchased)
(('a', 'b'), ['b'])
>>> [len(w) for w in split_waves(["u1", "u2", "u1", "u3"], key=lambda u: u)]
[2, 2]
>>> live_hit(["x", "y", "z"], "y")
(1, 0.6309...)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from models.base import Interaction, UserContext
from schemas import EVENT_TYPES, Event
from stream_app.state import UserState

T = TypeVar("T")


def to_context(user_id: str, state: UserState) -> UserContext:
    """The models' view of a user's state."""
    return UserContext(
        user_id=user_id,
        recent_items=tuple(state.recent),
        purchased=frozenset(state.purchased),
        counts=dict(zip(EVENT_TYPES, state.counts)),
        shown=tuple(state.shown),
        last_ts=state.last_ts,
    )


def to_interaction(event: Event) -> Interaction:
    return Interaction(event.user_id, event.item_id, event.type, event.ts)


def exclusions(ctx: UserContext, event: Event) -> frozenset[str]:
    """Items never to recommend after ``event``: everything purchased and the item just touched."""
    return ctx.purchased | {event.item_id}


def split_waves(items: Sequence[T], key: Callable[[T], Hashable]) -> list[list[T]]:
    """Split a batch, keeping order, so that no key appears twice in one wave.

    A user's second event in a batch must see what the first one taught the models, so each
    wave is learned and ranked before the next starts.
    """
    waves: list[list[T]] = []
    current: list[T] = []
    seen: set = set()
    for it in items:
        k = key(it)
        if k in seen:
            waves.append(current)
            current, seen = [], set()
        current.append(it)
        seen.add(k)
    if current:
        waves.append(current)
    return waves


def live_hit(shown: Sequence[str], item_id: str, k: int = 10) -> tuple[int, float]:
    """Prequential quality of the list last shown, judged by the user's next item: (hit@k, ndcg@k)."""
    try:
        pos = list(shown[:k]).index(item_id)
    except ValueError:
        return 0, 0.0
    return 1, 1.0 / math.log2(pos + 2)


def recommendation_message(
    event: Event,
    ranked: Sequence[tuple[str, float, str]],
    model_version: dict,
    generated_at: float,
    latency_ms: float,
    purchase_probability: float | None = None,
    return_probability: float | None = None,
) -> dict:
    """The ``recommendations`` value for one event (see schemas/recommendations.schema.json)."""
    return {
        "user_id": event.user_id,
        "event_id": event.event_id,
        "items": [{"item_id": i, "score": round(float(s), 6), "source": src} for i, s, src in ranked],
        "model_version": model_version,
        "generated_at": generated_at,
        "latency_ms": round(latency_ms, 3),
        "purchase_probability": purchase_probability,
        "return_probability": return_probability,
    }
