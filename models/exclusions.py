"""What is never recommended: the one rule, shared by the worker's scorer and the offline replay.

After a user's event the list pushed to that user leaves out

* the item of that event (the item just touched: "view it again" is not a recommendation),
* every item the user has purchased, and every item the user rejected (``hidden``: a dislike or
  a hide),
* and, where a dataset's semantics ask for it, every item the user has already interacted with
  (``seen``: on rating data nobody rates a film twice, so a seen film can never be the next one).

The worker calls :func:`exclusions` (as ``stream_app.core.logic.exclusions``) with the context
after the event and the event; :func:`models.evaluation.prequential.evaluate` calls it with the
context before the user's next event, which is the same context, and the previous event. Both
pass the result to ``rank``/``rank_many`` as ``exclude``.

>>> from models.base import Interaction, UserContext
>>> ctx = UserContext("u", ("a", "b"), frozenset({"p"}))
>>> sorted(exclusions(ctx, Interaction("u", "b", "view", 1.0)))
['b', 'p']
>>> sorted(exclusions(ctx, None)), sorted(exclusions(ctx, None, seen={"a", "b"}))
(['p'], ['a', 'b', 'p'])
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from models.base import UserContext

_NOTHING: frozenset[str] = frozenset()


class Touched(Protocol):
    """Anything naming the item an event touched (a ``schemas.Event``, a :class:`~models.base.Interaction`)."""

    @property
    def item_id(self) -> str: ...


def exclusions(ctx: UserContext, event: Touched | None, seen: Collection[str] = _NOTHING) -> frozenset[str]:
    """Items never to recommend after ``event``: everything purchased or rejected, and the item just touched.

    ``ctx`` is the user's context once ``event`` is applied; ``event`` is None before the user's
    first event (nothing touched yet). ``seen``, when given, is excluded too (see the module doc).
    """
    out = ctx.purchased if event is None else ctx.purchased | {event.item_id}
    if ctx.hidden:
        out = out | ctx.hidden
    if seen:
        out = out.union(seen)
    return out
