"""Small synthetic interaction streams, for doctests, the model checks and benchmarks.

>>> events = synthetic_stream(n=5)
>>> len(events), events[0].ts, events[0].item_id in synthetic_items()
(5, 1000.0, True)
"""

from __future__ import annotations

import random

from models.base import Interaction

TYPES = ["view"] * 6 + ["click"] * 3 + ["add_to_cart", "purchase"]
"""Event types drawn by :func:`synthetic_stream`, views most often."""


def synthetic_items(n_items: int = 40) -> list[str]:
    """The item ids :func:`synthetic_stream` draws from."""
    return [f"i{j}" for j in range(n_items)]


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
