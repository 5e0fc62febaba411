"""The synthetic generator's own next-item law: what an oracle of the stream would recommend.

:func:`stream_app.data.synthetic.generate` draws every event from a few known probabilities; given
a :class:`Truth` it records, per event, the state those probabilities depend on (the session's
taste and funnel stage, the item's related items, the catalogue so far). :meth:`Truth.law` turns
the record into a :class:`Law`: after a user's event, the probability that each item is the
user's next one, i.e. the ranking no model of the stream can beat on average.

After an event of user ``u`` on item ``x`` in a session of taste ``t`` at funnel stage ``s``,
with ``f`` the funnel probability of that stage (0 after a purchase), ``e = p_session_end``,
``nu = new_item_rate`` and ``tp(i)`` the chance of item ``i``'s popularity rank within its taste
(``((r+1)/m)**(1/3) - (r/m)**(1/3)``, ``q`` the same over tastes)::

    P(next = i) = f * [i = x]
                + (1-f)(1-e) * ( p_related * w_j [i = related(x)_j]
                                 + (1-nu) * tp(i) * (p_taste [taste(i) = t] + p_explore * q(taste(i))) )
                + (1-f) e * (1-nu) * tp(i) * ( (1-p_explore) * start_u(taste(i)) + p_explore * q(taste(i)) )

(``w_j`` = 0.577, 0.239, 0.184 for the three related items, ``start_u`` = 0.8 on the user's home
taste and 0.1 on each neighbour: where a new session of the user starts). The law assumes the
user's next event continues the session of their latest event, or, when that session ends, comes
from the user's next session; a user with two sessions open at once (rare) and items not born yet
(``nu``) are what it cannot foresee.

>>> from stream_app.data.synthetic import generate
>>> truth = Truth()
>>> events = list(generate(400, n_users=20, n_items=60, seed=3, truth=truth))
>>> law = truth.law()
>>> from models.base import Interaction
>>> law.observe(Interaction(events[0]["user_id"], events[0]["item_id"], events[0]["type"], events[0]["ts"]))
>>> top = law.most_likely(events[0]["user_id"], 5, exclude=())
>>> len(top), all(a[1] >= b[1] > 0 for a, b in zip(top, top[1:]))
(5, True)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.base import Interaction

N_RELATED = 3
P_NEIGHBOUR_START = 0.1
"""A new session starts on each neighbour of the user's home taste with this probability."""
RELATED_WEIGHTS = tuple(math.sqrt((j + 1) / N_RELATED) - math.sqrt(j / N_RELATED) for j in range(N_RELATED))
"""Chance of each related item (the generator picks index ``int(3 * u**2)``)."""

State = tuple[int, int, int, int, tuple[int, ...], int]
"""Per event: user index, session taste, funnel stage, item, its related items, items born so far."""


@dataclass(frozen=True)
class Knobs:
    """The generator's probabilities (see :func:`stream_app.data.synthetic.generate`)."""

    p_related: float
    p_taste: float
    funnel: tuple[float, ...]
    p_session_end: float
    new_item_rate: float

    def check(self) -> None:
        """A clear ``ValueError`` for a probability out of range."""
        named = {"p_related": self.p_related, "p_taste": self.p_taste, "p_session_end": self.p_session_end,
                 "new_item_rate": self.new_item_rate}
        named.update({f"funnel[{i}]": p for i, p in enumerate(self.funnel)})
        for name, p in named.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if len(self.funnel) != 3:
            raise ValueError(f"funnel must be three probabilities (click, cart, purchase), got {self.funnel}")
        if self.p_related + self.p_taste > 1.0 + 1e-12:
            raise ValueError(f"p_related + p_taste must be at most 1, got {self.p_related} + {self.p_taste}")

    @property
    def p_explore(self) -> float:
        return max(0.0, 1.0 - self.p_related - self.p_taste)


def rank_probabilities(m: int) -> np.ndarray:
    """Chance of each popularity rank ``0..m-1`` under the generator's skew (``int(m * u**3)``)."""
    edges = (np.arange(m + 1, dtype=np.float64) / m) ** (1.0 / 3.0)
    return np.diff(edges)


@dataclass
class Truth:
    """What :func:`~stream_app.data.synthetic.generate` knew at each event (filled while it runs)."""

    knobs: Knobs | None = None
    n_tastes: int = 0
    taste_of: list[int] = field(default_factory=list)
    members: list[list[int]] = field(default_factory=list)
    home: list[int] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    """Every item id, the ones born during the stream included (the generator's own list)."""
    states: list[State] = field(default_factory=list)
    born: list[tuple[int, int]] = field(default_factory=list)
    """Per item born during the stream, in order: its taste and its position in the taste's order."""

    def start(self, knobs: Knobs, n_tastes: int, taste_of: list[int], members: list[list[int]], home: list[int],
              user_ids: list[str], item_ids: list[str]) -> None:
        """Called by the generator before the first event (copies what it will change)."""
        if self.knobs is not None:
            raise ValueError("a Truth records one stream; pass a fresh one to each generate()")
        self.knobs, self.n_tastes, self.home, self.user_ids = knobs, n_tastes, list(home), list(user_ids)
        self.taste_of, self.members, self.item_ids = list(taste_of), [list(g) for g in members], item_ids

    def categories(self) -> dict[str, str]:
        """Every item's taste as a catalogue category (``taste-{n}``), born items included."""
        tastes = list(self.taste_of) + [taste for taste, _ in self.born]
        return {item: f"taste-{t}" for item, t in zip(self.item_ids, tastes)}

    def law(self) -> Law:
        """A fresh law for one replay of the recorded stream (each replay needs its own)."""
        if self.knobs is None:
            raise ValueError("this Truth has recorded no stream yet")
        return Law(self)


class Law:
    """The next-item probabilities of every user of a recorded stream, as the replay goes.

    :meth:`observe` each event in replay order; :meth:`most_likely` then ranks for its user.
    """

    def __init__(self, truth: Truth) -> None:
        assert truth.knobs is not None
        self.truth, self.knobs = truth, truth.knobs
        self.item_ids = truth.item_ids
        self.index = {item: i for i, item in enumerate(truth.item_ids)}
        n = len(truth.item_ids)
        self.n_initial = n - len(truth.born)
        self.members = [list(g) for g in truth.members]
        self.taste_of = np.zeros(n, dtype=np.int64)
        self.taste_of[: self.n_initial] = truth.taste_of
        for j, (t, _) in enumerate(truth.born):
            self.taste_of[self.n_initial + j] = t
        self.q = rank_probabilities(truth.n_tastes)
        self.tp = np.zeros(n, dtype=np.float64)
        for group in self.members:
            if group:
                self.tp[group] = rank_probabilities(len(group))
        self.version = self.n_initial
        self._explore_order = self._order()
        self._member_arrays = [np.asarray(g, dtype=np.int64) for g in self.members]
        self._point = np.zeros(n, dtype=np.float64)  # scratch: point masses of the row being ranked
        self.pending: dict[str, deque[int]] = {}
        for i, st in enumerate(truth.states):
            self.pending.setdefault(truth.user_ids[st[0]], deque()).append(i)
        self.latest: dict[str, int] = {}

    def _order(self) -> np.ndarray:
        explore = self.q[self.taste_of] * self.tp
        return np.argsort(-explore[: self.version], kind="stable")

    def _advance(self, version: int) -> None:
        """Bring the catalogue to ``version`` items (the births recorded up to then)."""
        if version <= self.version:
            return
        changed = set()
        for j in range(self.version - self.n_initial, version - self.n_initial):
            t, at = self.truth.born[j]
            self.members[t].insert(at, self.n_initial + j)
            changed.add(t)
        for t in changed:
            self.tp[self.members[t]] = rank_probabilities(len(self.members[t]))
            self._member_arrays[t] = np.asarray(self.members[t], dtype=np.int64)
        self.version = version
        self._explore_order = self._order()

    def observe(self, event: Interaction) -> None:
        """The replay learned ``event``: its user's next-item law is now the one after it."""
        queue = self.pending.get(event.user_id)
        if not queue:
            raise ValueError(f"event of {event.user_id!r} on {event.item_id!r} is not in the recorded stream")
        states = self.truth.states
        for pos in range(min(len(queue), 8)):  # ties in time may have been reordered
            i = queue[pos]
            if self.item_ids[states[i][3]] == event.item_id:
                del queue[pos]
                self.latest[event.user_id] = i
                return
        raise ValueError(f"event of {event.user_id!r} on {event.item_id!r} is not in the recorded stream")

    def _weights(self, i: int) -> tuple[dict[int, float], np.ndarray, float]:
        """After event ``i``: point masses per item, weight per taste of ``tp``, weight of ``q * tp``."""
        kn = self.knobs
        u, t, stage, item, rel, _ = self.truth.states[i]
        f = kn.funnel[stage - 1] if 1 <= stage <= 3 else 0.0
        cont, new = (1.0 - f) * (1.0 - kn.p_session_end), (1.0 - f) * kn.p_session_end
        keep = 1.0 - kn.new_item_rate
        points: dict[int, float] = {item: f}
        for j, x in enumerate(rel):
            points[x] = points.get(x, 0.0) + cont * kn.p_related * RELATED_WEIGHTS[j]
        taste_w = np.zeros(self.truth.n_tastes, dtype=np.float64)
        taste_w[t] += cont * kn.p_taste * keep
        home, n_t, stay = self.truth.home[u], self.truth.n_tastes, 1.0 - kn.p_explore
        for t0, w in ((home, 1.0 - 2 * P_NEIGHBOUR_START), ((home + 1) % n_t, P_NEIGHBOUR_START),
                      ((home - 1) % n_t, P_NEIGHBOUR_START)):
            taste_w[t0] += new * stay * w * keep
        return points, taste_w, (cont + new) * kn.p_explore * keep

    def _probabilities(self, weights: tuple[dict[int, float], np.ndarray, float], cand: np.ndarray) -> np.ndarray:
        """P(next = c) for each item of ``cand``."""
        points, taste_w, explore_w = weights
        tastes = self.taste_of[cand]
        keys = list(points)
        point = self._point
        point[keys] = list(points.values())
        p: np.ndarray = (taste_w[tastes] + explore_w * self.q[tastes]) * self.tp[cand] + point[cand]
        point[keys] = 0.0
        return p

    def _state_of(self, user_id: str) -> int | None:
        i = self.latest.get(user_id)
        if i is not None:
            self._advance(self.truth.states[i][5])
        return i

    def probability(self, user_id: str, item_id: str) -> float:
        """P(the user's next item is ``item_id``) after the user's latest observed event (0 before any)."""
        i, c = self._state_of(user_id), self.index.get(item_id)
        if i is None or c is None or c >= self.version:
            return 0.0
        return float(self._probabilities(self._weights(i), np.asarray([c]))[0])

    def most_likely(self, user_id: str, k: int, exclude: Collection[str]) -> list[tuple[str, float]]:
        """The ``k`` items most likely to be the user's next, best first, none in ``exclude``."""
        i = self._state_of(user_id)
        if i is None or k <= 0:
            return []
        weights = self._weights(i)
        points, taste_w, _ = weights
        depth = k + len(exclude) + len(points)
        parts = [np.fromiter(points, dtype=np.int64, count=len(points)), self._explore_order[:depth]]
        parts += [self._member_arrays[t][:depth] for t in np.flatnonzero(taste_w).tolist()]
        cand = np.concatenate(parts)  # may repeat an item: the first of its copies is kept below
        p = self._probabilities(weights, cand)
        order = np.argsort(-p, kind="stable")
        out: list[tuple[str, float]] = []
        ids, taken = self.item_ids, set()
        cands, probs = cand.tolist(), p.tolist()
        for j in order.tolist():
            c = cands[j]
            if probs[j] <= 0.0:
                break
            if c in taken:
                continue
            taken.add(c)
            item = ids[c]
            if item not in exclude:
                out.append((item, probs[j]))
                if len(out) == k:
                    break
        return out

    def most_likely_many(self, user_ids: Sequence[str], k: int,
                         excludes: Sequence[Collection[str]]) -> list[list[tuple[str, float]]]:
        """:meth:`most_likely` for each user (in order: the catalogue only moves forward)."""
        return [self.most_likely(u, k, ex) for u, ex in zip(user_ids, excludes)]
