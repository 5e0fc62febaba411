"""A synthetic event stream with the structure real shops show, deterministic for a seed.

What the stream contains:

* **Tastes.** Items belong to ``n_tastes`` categories. Each user has a home taste; a session
  starts in it (or in a neighbouring taste, the users' drift within a cluster) and may drift
  to a neighbouring taste as it goes.
* **Skew.** Within a taste, item popularity follows a power law (rank ``r`` of ``m`` items is
  drawn as ``m * u**3``); tastes themselves and user activity are skewed the same way.
* **Sequences.** Each item has three related items in its taste; after an item the next one is
  one of them with probability ``p_related`` (mostly the first), so co-occurrence and sequence
  models have a signal; with ``p_taste`` it is drawn from the session's taste, otherwise from
  any taste (exploring). ``p_related=1`` plants a pure sequence stream, ``p_related=0`` one
  that only taste models can learn.
* **Sessions.** Up to 64 sessions run at once, interleaved; each has a ``session_id`` and ends
  before a new view with probability ``p_session_end`` (about eight items).
* **Funnel.** Every item is viewed; a view is followed by a click of the same item with
  probability ``funnel[0]`` (0.30), a click by an add-to-cart with ``funnel[1]`` (0.25), an
  add-to-cart by a purchase with ``funnel[2]`` (0.40); so views > clicks > carts > purchases.
  ``funnel=None`` gives views only.
* **Prices.** Each item has a fixed price (log-normal around a per-taste level); every event
  carries it.
* **New items.** With probability ``new_item_rate`` per newly viewed item a new item (id
  ``i-{n}`` with ``n >= n_items``) joins a taste, usually near the top of its popularity order,
  and becomes related to an existing item; the catalogue grows over time.
* **Time.** ``ts`` starts at ``start_ts`` and never decreases (gaps are exponential with mean
  ``1 / events_per_second``), rounded to the millisecond.

The knobs' defaults give the stream this module has always produced (the same events for the same
seed). ``truth=`` (a :class:`~stream_app.data.synthetic_law.Truth`) records what the generator
knew at each event, from which :meth:`Truth.law` gives every user's true next-item
probabilities: the ceiling of any recommender on the stream.

Ids: ``u-{n}`` users, ``i-{n}`` items, ``s-{seed}-{n}`` sessions, ``syn-{seed}-{n}`` events.

>>> events = list(generate(1000, n_users=50, n_items=200, seed=7))
>>> len(events), events[0]["type"], events == list(generate(1000, n_users=50, n_items=200, seed=7))
(1000, 'view', True)
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
True
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from stream_app.data.synthetic_law import N_RELATED, P_NEIGHBOUR_START, Knobs, Truth

P_CLICK = 0.30
P_CART = 0.25
P_PURCHASE = 0.40
FUNNEL = (P_CLICK, P_CART, P_PURCHASE)
P_SESSION_END = 0.12
P_RELATED = 0.55
P_TASTE = 0.35  # else: explore another taste
P_DRIFT = 0.5  # an exploring step moves the session to that taste with this probability
MAX_CONCURRENT_SESSIONS = 64


def _skewed(n: int, u: float) -> int:
    """Rank in ``[0, n)`` drawn with a power-law skew toward 0."""
    return int(n * u * u * u)


def generate(
    n_events: int,
    n_users: int = 1000,
    n_items: int = 5000,
    seed: int = 0,
    *,
    start_ts: float = 1_700_000_000.0,
    new_item_rate: float = 0.002,
    n_tastes: int | None = None,
    events_per_second: float = 100.0,
    p_related: float = P_RELATED,
    p_taste: float = P_TASTE,
    funnel: tuple[float, float, float] | None = FUNNEL,
    p_session_end: float = P_SESSION_END,
    truth: Truth | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield ``n_events`` contract event dicts (see the module doc); the same seed gives the same stream.

    ``n_items`` is the initial catalogue (its size); new items are added on top of it at
    ``new_item_rate`` per item drawn from a taste. ``n_tastes`` defaults to about one taste per
    50 items (at least 2). ``p_related`` and ``p_taste`` mix sequence and taste (their sum at
    most 1; the rest explores), ``funnel`` gives the click, cart and purchase probabilities (None:
    views only), ``p_session_end`` the chance a session ends before a view. ``truth``, when
    given, is filled as the events are drawn.
    """
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    if n_users < 1 or n_items < 1:
        raise ValueError(f"n_users and n_items must be >= 1, got {n_users} and {n_items}")
    if not 0.0 <= new_item_rate <= 1.0:
        raise ValueError(f"new_item_rate must be in [0, 1], got {new_item_rate}")
    if events_per_second <= 0:
        raise ValueError(f"events_per_second must be > 0, got {events_per_second}")
    n_tastes = n_tastes or max(2, min(n_items, n_items // 50))
    if not 1 <= n_tastes <= n_items:
        raise ValueError(f"n_tastes must be in [1, n_items], got {n_tastes}")
    knobs = Knobs(p_related, p_taste, (0.0, 0.0, 0.0) if funnel is None else tuple(funnel), p_session_end,
                  new_item_rate)
    knobs.check()
    return _stream(n_events, n_users, n_items, n_tastes, seed, start_ts, events_per_second, knobs, truth)


def _catalogue(
    n_items: int, n_tastes: int, np_rng: np.random.Generator
) -> tuple[list[int], list[list[int]], list[float], list[list[int]], list[float]]:
    # Tastes get skewed sizes; each item is in exactly one, at a random popularity rank.
    weights = 1.0 / np.arange(1, n_tastes + 1) ** 0.5
    taste_of = np.concatenate([np.arange(n_tastes), np_rng.choice(n_tastes, n_items - n_tastes, p=weights / weights.sum())])
    np_rng.shuffle(taste_of)
    members: list[list[int]] = [[] for _ in range(n_tastes)]
    for item, t in enumerate(taste_of.tolist()):
        members[t].append(item)
    level = np.exp(np_rng.normal(3.0, 0.8, n_tastes))
    prices = np.round(level[taste_of] * np.exp(np_rng.normal(0.0, 0.4, n_items)), 2).tolist()
    related: list[list[int]] = [[] for _ in range(n_items)]
    for group in members:
        m = len(group)
        arr = np.asarray(group)
        # Related items: biased to the popular part of the taste, never the item itself when avoidable.
        picks = (m * np_rng.random((m, N_RELATED)) ** 2).astype(np.int64)
        own = np.arange(m)[:, None]
        if m > 1:
            picks = np.where(picks == own, (picks + 1) % m, picks)
        for row, item in zip(arr[picks].tolist(), group):
            related[item] = row
    return taste_of.tolist(), members, prices, related, level.tolist()


def _stream(n_events: int, n_users: int, n_items: int, n_tastes: int, seed: int, start_ts: float,
            events_per_second: float, knobs: Knobs, truth: Truth | None) -> Iterator[dict[str, Any]]:
    # One long loop on purpose: the generator's whole state lives in local variables and the
    # per-event work stays inline, so producing a stream costs little next to sending it.
    np_rng = np.random.default_rng(seed)
    rnd = random.Random(seed)
    rand = rnd.random
    expo = rnd.expovariate
    taste_of, members, prices, related, level = _catalogue(n_items, n_tastes, np_rng)
    item_ids = [f"i-{i}" for i in range(n_items)]
    user_ids = [f"u-{u}" for u in np_rng.permutation(n_users).tolist()]  # activity rank -> user
    home = [_skewed(n_tastes, u) for u in np_rng.random(n_users).tolist()]
    p_click, p_cart, p_purchase = knobs.funnel
    p_related, p_new_explore = knobs.p_related, 1.0 - knobs.p_taste - knobs.p_related
    p_stay = knobs.p_related + knobs.p_taste
    p_end, new_item_rate = knobs.p_session_end, knobs.new_item_rate
    record = born = None
    if truth is not None:
        truth.start(knobs, n_tastes, taste_of, members, home, user_ids, item_ids)
        record, born = truth.states.append, truth.born.append

    k_slots = min(MAX_CONCURRENT_SESSIONS, n_users)
    # A session: [user index, session id, taste, current item, funnel stage]
    slots: list[list[Any] | None] = [None] * k_slots
    active: set[int] = set()
    n_sessions = 0
    rate = float(events_per_second)
    ts = float(start_ts)
    prefix = f"syn-{seed}-"
    sess_prefix = f"s-{seed}-"

    def new_session() -> list[Any]:
        nonlocal n_sessions
        for _ in range(4):  # prefer a user with no open session
            u = _skewed(n_users, rand())
            if u not in active:
                break
        active.add(u)
        t = home[u]
        if rand() < 2 * P_NEIGHBOUR_START:
            t = (t + (1 if rand() < 0.5 else -1)) % n_tastes
        n_sessions += 1
        return [u, f"{sess_prefix}{n_sessions}", t, -1, 0]

    for n in range(n_events):
        j = int(rand() * k_slots)
        s = slots[j]
        if s is None:
            s = slots[j] = new_session()
        stage = s[4]
        r = rand()
        if stage == 1 and r < p_click:
            kind, s[4] = "click", 2
        elif stage == 2 and r < p_cart:
            kind, s[4] = "add_to_cart", 3
        elif stage == 3 and r < p_purchase:
            kind, s[4] = "purchase", 4
        else:
            if stage and rand() < p_end:
                active.discard(s[0])
                s = slots[j] = new_session()
            kind, s[4] = "view", 1
            prev = s[3]
            t = s[2]
            r = rand()
            if prev >= 0 and r < p_related:
                rel = related[prev]
                item = rel[int(len(rel) * rand() ** 2)]
            else:
                if (prev >= 0 and r > p_stay) or (prev < 0 and r < p_new_explore):
                    other = _skewed(n_tastes, rand())
                    if rand() < P_DRIFT:
                        s[2] = other
                    t = other
                group = members[t]
                if rand() < new_item_rate:
                    item = len(item_ids)
                    item_ids.append(f"i-{item}")
                    taste_of.append(t)
                    prices.append(round(level[t] * (0.6 + 0.8 * rand()), 2))
                    related.append([group[_skewed(len(group), rand())] for _ in range(N_RELATED)])
                    at = int(len(group) * rand() ** 2)
                    group.insert(at, item)
                    host = group[int(len(group) * rand())]
                    if host != item:
                        related[host][N_RELATED - 1] = item
                    if born is not None:
                        born((t, at))
                else:
                    item = group[_skewed(len(group), rand())]
            s[3] = item
        item = s[3]
        if record is not None:
            record((s[0], s[2], s[4], item, tuple(related[item]), len(item_ids)))
        ts += expo(rate)
        yield {
            "event_id": f"{prefix}{n}",
            "user_id": user_ids[s[0]],
            "item_id": item_ids[item],
            "type": kind,
            "ts": round(ts, 3),
            "price": prices[item],
            "session_id": s[1],
        }
