"""A small synthetic interaction stream and the worker-style replay the model tests learn from.

>>> events = synthetic_stream(n=5)
>>> len(events), events[0].ts
(5, 1000.0)
"""

from __future__ import annotations

import random
from dataclasses import replace

from models.base import Interaction, UserContext

TYPES = ["view"] * 6 + ["click"] * 3 + ["add_to_cart", "purchase"]


def synthetic_stream(n: int = 800, n_users: int = 25, n_items: int = 40, seed: int = 0) -> list[Interaction]:
    """Users walk item chains (i -> i+1 mostly), with some popular items and random jumps."""
    rng = random.Random(seed)
    pos = {f"u{u}": rng.randrange(n_items) for u in range(n_users)}
    out = []
    for t in range(n):
        user = f"u{rng.randrange(n_users)}"
        r = rng.random()
        if r < 0.6:
            pos[user] = (pos[user] + 1) % n_items
        elif r < 0.8:
            pos[user] = rng.choice([0, 1, 2])
        else:
            pos[user] = rng.randrange(n_items)
        out.append(Interaction(user, f"i{pos[user]}", rng.choice(TYPES), 1000.0 + 10.0 * t))
    return out


def replay(model, events: list[Interaction], rank_every: int = 2) -> dict[str, UserContext]:
    """Learn the stream the way the worker does: rank after events so impressions get labeled."""
    ctx: dict[str, UserContext] = {}
    for n, ev in enumerate(events):
        before = ctx.get(ev.user_id) or UserContext.empty(ev.user_id)
        model.learn_one(before, ev)
        after = before.after(ev)
        if n % rank_every == 0:
            shown = tuple(item for item, _ in model.rank(after, k=10, exclude=after.purchased))
            after = replace(after, shown=shown)
        ctx[ev.user_id] = after
    return ctx
