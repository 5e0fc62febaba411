"""Pure functions between the agents and the models: no Faust, no I/O.

>>> from schemas import Event
>>> from stream_app.core.state import UserState
>>> ctx = to_context("u-1", UserState(recent=["a", "b"], purchased=["b"]))
>>> ctx.recent_items, sorted(ctx.purchased)
(('a', 'b'), ['b'])
>>> [len(w) for w in split_waves(["u1", "u2", "u1", "u3"], key=lambda u: u)]
[2, 2]
>>> split_rounds(["u1", "u2", "u1", "u3", "u1"], key=lambda u: u)
[[0, 1, 3], [2], [4]]
>>> live_hit(["x", "y", "z"], "y")
(1, 0.6309...)
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections.abc import Callable, Generator, Hashable, Sequence
from typing import Any, TypeVar, cast

from models.base import Interaction, UserContext
from models.exclusions import exclusions as exclusions  # the one rule, shared with the offline replay
from schemas import EVENT_TYPES, Event
from stream_app.core.state import UserState

T = TypeVar("T")
R = TypeVar("R")
_NOTHING: frozenset[str] = frozenset()
_TYPES_FIXED = tuple(EVENT_TYPES) == ("view", "click", "add_to_cart", "purchase")


def to_context(user_id: str, state: UserState) -> UserContext:
    """The models' view of a user's state."""
    c = state.counts
    purchased = state.purchased
    return UserContext(
        user_id,
        tuple(state.recent),
        frozenset(purchased) if purchased else _NOTHING,
        {"view": c[0], "click": c[1], "add_to_cart": c[2], "purchase": c[3]}
        if len(c) == 4 and _TYPES_FIXED
        else dict(zip(EVENT_TYPES, c)),
        tuple(state.shown),
        state.last_ts,
        tuple(purchased) if purchased else (),
        frozenset(state.hidden) if state.hidden else _NOTHING,
    )


def to_interaction(event: Event) -> Interaction:
    return Interaction(event.user_id, event.item_id, event.type, event.ts)


def split_waves(items: Sequence[T], key: Callable[[T], Hashable]) -> list[list[T]]:
    """Split a batch, keeping order, so that no key appears twice in one wave.

    A user's second event in a batch must see what the first one taught the models, so each
    wave is learned and ranked before the next starts.
    """
    waves: list[list[T]] = []
    current: list[T] = []
    seen: set[Hashable] = set()
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


def split_rounds(items: Sequence[T], key: Callable[[T], Hashable], most: int = 0) -> list[list[int]]:
    """Group a batch into rounds of positions: round ``r`` holds every key's ``r``-th item.

    Like :func:`split_waves`, no key appears twice in a round and each key's items keep their
    order across rounds, but the rounds are as large as they can be (a batch in which every
    user has two events makes two rounds, however the events interleave). ``most`` > 0 cuts
    each round into pieces of at most that many positions, in order (bounded work per piece).

    >>> split_rounds("abacab", key=str)
    [[0, 1, 3], [2, 5], [4]]
    >>> split_rounds("abcdab", key=str, most=3)
    [[0, 1, 2], [3], [4, 5]]
    """
    rounds: list[list[int]] = []
    seen: dict[Hashable, int] = {}
    for pos, it in enumerate(items):
        k = key(it)
        r = seen.get(k, 0)
        seen[k] = r + 1
        if r == len(rounds):
            rounds.append([])
        rounds[r].append(pos)
    if most > 0:
        rounds = [rnd[i:i + most] for rnd in rounds for i in range(0, len(rnd), most)]
    return rounds


def finish(steps: Generator[None, None, R]) -> R:
    """Run a generator of bounded steps (``..._steps`` methods) to its end; its return value.

    >>> def steps():
    ...     yield None
    ...     return 42
    >>> finish(steps())
    42
    """
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast("R", done.value)


def live_hit(shown: Sequence[str], item_id: str, k: int = 10) -> tuple[int, float]:
    """Prequential quality of the list last shown, judged by the user's next item: (hit@k, ndcg@k)."""
    try:
        pos = list(shown[:k]).index(item_id)
    except ValueError:
        return 0, 0.0
    return 1, 1.0 / math.log2(pos + 2)


class RecommendationIds:
    """Unique ids of recommendation lists: ``<prefix>-<counter>`` (hex).

    The prefix is 64 random bits drawn on the first id (not at import), so two workers, or one
    worker before and after a restart, never hand out the same id; the counter makes each id of
    one process unique. Cheaper than a uuid per message (one increment and one format).

    >>> ids = RecommendationIds("w1")
    >>> ids(), ids()
    ('w1-1', 'w1-2')
    >>> a, b = RecommendationIds(), RecommendationIds()
    >>> a() != b()
    True
    """

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = prefix
        self._count = itertools.count(1)

    def __call__(self) -> str:
        if self._prefix is None:
            self._prefix = secrets.token_hex(8)
        return f"{self._prefix}-{next(self._count):x}"


new_recommendation_id = RecommendationIds()
"""The process's id source, shared by pushed messages and lists served on request."""


def recommendation_message(
    event: Event,
    ranked: Sequence[tuple[str, float, str]],
    model_version: dict[str, Any],
    generated_at: float,
    latency_ms: float,
    purchase_probability: float | None = None,
    return_probability: float | None = None,
    recommendation_id: str | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    """The ``recommendations`` value for one event (see schemas/recommendations.schema.json).

    ``recommendation_id`` names this list (a client reports it with what it showed); a new one
    from :data:`new_recommendation_id` when not given. ``variant``: the user's variant of the
    running experiment (the field is left out without one).
    """
    msg: dict[str, Any] = {
        "recommendation_id": recommendation_id if recommendation_id is not None else new_recommendation_id(),
        "user_id": event.user_id,
        "event_id": event.event_id,
        "items": [{"item_id": i, "score": round(float(s), 6), "source": src} for i, s, src in ranked],
        "model_version": model_version,
        "generated_at": generated_at,
        "latency_ms": round(latency_ms, 3),
        "purchase_probability": purchase_probability,
        "return_probability": return_probability,
    }
    if variant is not None:
        msg["variant"] = variant
    return msg
