"""Array mirror of the retrievers, so a whole wave of users is scored with a few numpy calls.

:class:`CandidateIndex` gives every item an integer id and keeps, per item, the popularity
figures and the co-occurrence neighbor row as numpy arrays (a fixed-capacity row per item whose
slots follow the neighbor dict's insertion order, values copied from the dict so both always
agree).  :meth:`CandidateIndex.votes` aggregates the co-occurrence votes of many users at once:
each (user, item) pair is keyed ``user * capacity + item`` and grouped with a scratch "stamp"
array (write every key's position, read it back: entries that read their own position are the
group representatives), which costs O(entries) and no sort.

>>> from models.base import Interaction, UserContext
>>> from models.retrieval.cooccurrence import CooccurrenceRecommender
>>> cooc = CooccurrenceRecommender()
>>> idx = CandidateIndex(cooc)
>>> u = UserContext.empty("u")
>>> for t, item in enumerate("abc"):
...     ev = Interaction("u", item, "click", float(t))
...     cooc.learn_one(u, ev)
...     idx.learn(u, ev)
...     u = u.after(ev)
>>> g = idx.votes([UserContext("v", ("a",))], n_top=5)
>>> [idx.names[i] for i in g.items.tolist()], [round(v, 3) for v in g.votes.tolist()]
(['b', 'c'], [0.27, 0.189])
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np
from numpy.typing import NDArray

from models.base import Interaction, UserContext
from models.retrieval.cooccurrence import CooccurrenceRecommender

CHUNK_USERS = 64
"""Users grouped per key space; waves larger than this are scored in chunks."""


@dataclass(slots=True)
class Votes:
    """The top co-occurrence votes of a chunk of users, grouped by user, best first."""

    users: np.ndarray  # wave row of each entry
    items: np.ndarray  # item id
    rank: np.ndarray  # rank among the user's votes (0 = best)
    votes: np.ndarray  # summed vote
    best: np.ndarray  # per user: the best vote (1.0 when none)
    all_keys: np.ndarray  # every voted (user, item) key, for look-ups
    all_votes: np.ndarray
    all_last: np.ndarray  # the part of the vote that came from the user's latest item


class CandidateIndex:
    """Integer ids, neighbor rows and totals of a :class:`CooccurrenceRecommender`, as arrays."""

    def __init__(
        self, cooccurrence: CooccurrenceRecommender, items: Iterable[str] = (), capacity: int = 1024,
        max_items: int = 0,
    ) -> None:
        self.cooc = cooccurrence
        self.ids: dict[str, int] = {}
        """Id of every item held (an id freed by :meth:`forget` is given to a later item)."""
        self.names: list[str] = []
        self.width = 2 * cooccurrence.max_neighbors + 1
        self.capacity = 0
        self.max_items = max(0, int(max_items))
        """The most items meant to be held (0: no bound); the arrays are sized for it up front
        (zero-filled memory is only committed once written), so they never grow by copying."""
        self.alive = np.zeros(0, bool)
        """Per id: whether it names an item held now."""
        self.free: list[int] = []
        self.dying: dict[str, int] = {}
        """Items being forgotten -> their old id, until no neighbor row names that id any more."""
        self._dying = np.zeros(0, bool)
        self._dying_ids: list[int] = []
        self._cursor = 0
        self.generation = 0
        """How many times forgotten ids were freed: a list of ids taken earlier may name other items now
        (see :meth:`still_means`)."""
        self.freed_at = np.zeros(0, np.int32)
        self.nb_idx = np.zeros((0, self.width), np.int32)
        self.nb_w = np.zeros((0, self.width))
        self.nb_len = np.zeros(0, np.int64)
        self.totals = np.zeros(0)
        self.slots: list[dict[int, int] | None] = []
        self.pop_counts = np.zeros(0)
        """All-time weighted count of every item id (see :meth:`set_popularity`)."""
        self.pop_log_scores = np.zeros(0)
        """Stored log popularity score of every item id, ``-inf`` for none (see :meth:`set_popularity`)."""
        self._stamp = np.zeros(0, np.int32)
        self._grow(capacity)
        self._pows = cooccurrence.recency_decay ** np.arange(cooccurrence.context)
        for item in items:  # in learning order, so that ties break as they did before a restore
            self.intern(item)
        for item, d in cooccurrence.neighbors.items():
            self._rebuild(self.intern(item), d)
            self.totals[self.ids[item]] = cooccurrence.totals[item]

    # -- ids ------------------------------------------------------------------------------
    def _grow(self, need: int) -> None:
        cap = max(need, 2 * self.capacity, 1024)
        if self.max_items and need <= self.max_items + self.headroom:
            cap = max(need, self.max_items + self.headroom)
        old = self.capacity
        for name in ("nb_idx", "nb_w"):  # zero-filled: pages are committed only once written
            arr = getattr(self, name)
            new = np.zeros((cap, self.width), arr.dtype)
            new[:old] = arr
            setattr(self, name, new)
        for name in ("nb_len", "totals"):
            arr = getattr(self, name)
            new = np.zeros(cap, arr.dtype)
            new[:old] = arr
            setattr(self, name, new)
        for name, value in (("pop_counts", 0.0), ("pop_log_scores", -np.inf)):
            arr = getattr(self, name)
            new = np.full(cap, value)
            new[: len(arr)] = arr
            setattr(self, name, new)
        for name, dtype in (("alive", np.bool_), ("_dying", np.bool_), ("freed_at", np.int32)):
            arr = getattr(self, name)
            new = np.zeros(cap, dtype)
            new[: len(arr)] = arr
            setattr(self, name, new)
        self.capacity = cap
        self._stamp = np.zeros(CHUNK_USERS * cap, np.int32)

    def reserve(self) -> None:
        """Size the arrays for :attr:`max_items` now (so they never grow while serving)."""
        if self.max_items and self.capacity < self.max_items + self.headroom:
            self._grow(self.max_items + self.headroom)

    @property
    def headroom(self) -> int:
        """Ids beyond :attr:`max_items` for the items that arrive while forgotten ones are swept."""
        return max(4096, self.max_items // 8)

    def intern(self, item: str) -> int:
        """The id of ``item``, assigning a free or the next one to a new item."""
        i = self.ids.get(item)
        if i is None:
            if self.free:
                i = self.free.pop()
                self.names[i] = item
            else:
                i = len(self.names)
                if i >= self.capacity:
                    self._grow(i + 1)
                self.names.append(item)
                self.slots.append(None)
            self.ids[item] = i
            self.alive[i] = True
            if self.dying:  # an item being forgotten and seen again is a new item
                self.dying.pop(item, None)
        return i

    def set_popularity(self, i: int, count: float, log_score: float) -> None:
        """Record the popularity figures of item id ``i``: its all-time count and stored log score."""
        self.pop_counts[i] = count
        self.pop_log_scores[i] = log_score

    # -- learning -------------------------------------------------------------------------
    def _rebuild(self, i: int, d: dict[str, float]) -> None:
        if self.dying:
            gone = [b for b in d if b in self.dying]
            if gone:
                self.cooc.drop_neighbors(self.names[i], gone)
        ids = [self.intern(b) for b in d]
        n = len(ids)
        self.nb_idx[i, :n] = ids
        self.nb_w[i, :n] = list(d.values())
        self.nb_len[i] = n
        self.slots[i] = {b: s for s, b in enumerate(ids)}

    def learn(self, user: UserContext, event: Interaction) -> None:
        """Copy what ``cooccurrence.learn_one(user, event)`` just changed (call it right after)."""
        x = event.item_id
        xi = self.intern(x)
        recent = user.recent_items
        if not recent:
            return
        nbs, tots, ids = self.cooc.neighbors, self.cooc.totals, self.ids
        nb_idx, nb_w, nb_len, totals, all_slots = self.nb_idx, self.nb_w, self.nb_len, self.totals, self.slots
        for r in recent[-self.cooc.window :]:
            if r == x:
                continue
            d = nbs.get(r)
            if d is None:
                continue
            ri = ids.get(r)
            if ri is None:
                ri = self.intern(r)
            slots = all_slots[ri]
            w = d.get(x)
            if slots is None or w is None or len(d) < len(slots) or (xi not in slots and len(slots) >= self.width):
                # new row, pruned, or full of ids being forgotten: copy it all
                self._rebuild(ri, d)
                nb_idx, nb_w, nb_len, totals = self.nb_idx, self.nb_w, self.nb_len, self.totals  # may have grown
            else:
                s = slots.get(xi)
                if s is None:
                    s = slots[xi] = len(slots)
                    nb_idx[ri, s] = xi
                    nb_len[ri] = s + 1
                nb_w[ri, s] = w
            totals[ri] = tots[r]

    # -- forgetting -----------------------------------------------------------------------
    def forget(self, ids: Sequence[int]) -> list[str]:
        """Stop holding the items of ``ids`` (held ones); returns their names.

        Their own rows and figures go at once (the caller drops them from the retrievers too);
        the rows of other items that still name them are cleaned by :meth:`sweep`, and their ids
        are given out again only once a whole sweep has passed (:attr:`sweeping` turns false).
        Until then :meth:`votes` leaves them out.
        """
        names = self.names
        gone = [names[i] for i in ids]
        for nm, i in zip(gone, ids):
            del self.ids[nm]
            self.dying[nm] = i
            self.slots[i] = None
        arr = np.asarray(ids, np.int64)
        self.alive[arr] = False
        self._dying[arr] = True
        self.nb_len[arr] = 0
        self.totals[arr] = 0.0
        self.pop_counts[arr] = 0.0
        self.pop_log_scores[arr] = -np.inf
        self._dying_ids.extend(ids)
        self._cursor = 0
        return gone

    @property
    def sweeping(self) -> bool:
        """Whether forgotten ids wait for :meth:`sweep` before they can be given out again."""
        return bool(self._dying_ids)

    def sweep(self, rows: int = 32768, rebuilds: int = 512) -> bool:
        """Clean the next ``rows`` rows (at most ``rebuilds`` of them changed) of the ids being
        forgotten; returns True once every row was passed and those ids are free again."""
        if not self._dying_ids:
            return True
        lo, end = self._cursor, len(self.names)
        hi = min(lo + rows, end)
        lens = self.nb_len[lo:hi]
        bad = self._dying[self.nb_idx[lo:hi]] & (np.arange(self.width) < lens[:, None])
        hit = lo + np.flatnonzero(bad.any(axis=1))
        if len(hit) > rebuilds:
            hi = int(hit[rebuilds])
            hit = hit[:rebuilds]
        for r in hit.tolist():
            self._clean_row(r)
        self._cursor = hi
        if hi < end:
            return False
        freed = self._dying_ids
        self.generation += 1
        self._dying[np.asarray(freed, np.int64)] = False
        self.freed_at[np.asarray(freed, np.int64)] = self.generation
        for i in freed:
            self.names[i] = ""
        self.free.extend(freed)
        self._dying_ids = []
        self.dying = {}
        return True

    def still_means(self, ids: Sequence[int], generation: int) -> bool:
        """Whether ``ids``, taken at ``generation``, still name the same items (none was freed since)."""
        if generation == self.generation or not ids:
            return True
        return not bool((self.freed_at[np.asarray(ids, np.int64)] > generation).any())

    def _clean_row(self, r: int) -> None:
        n = int(self.nb_len[r])
        row = self.nb_idx[r, :n]
        dying = self._dying[row]
        names = self.names
        gone: list[str] = []
        seen_again = False
        for i in row[dying].tolist():
            nm = names[i]
            if nm in self.dying:
                gone.append(nm)
            else:
                seen_again = True
        item = names[r]
        self.cooc.drop_neighbors(item, gone)
        d = self.cooc.neighbors.get(item)
        if seen_again or d is None:  # a neighbor forgotten then seen again has a new id: copy the row
            self._rebuild(r, d if d is not None else {})
            return
        keep = ~dying
        m = int(keep.sum())
        ids = row[keep]
        self.nb_w[r, :m] = self.nb_w[r, :n][keep]
        self.nb_idx[r, :m] = ids
        self.nb_len[r] = m
        self.slots[r] = dict(zip(ids.tolist(), range(m)))

    # -- scoring --------------------------------------------------------------------------
    def keys_of(self, per_user: Sequence[Collection[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(key, position) arrays of the known items, in order, of each user's collection of items."""
        lens = np.array([len(items) for items in per_user], np.int64)
        flat = list(map(self.ids.get, chain.from_iterable(per_user), repeat(-1)))
        if not flat:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ids = np.array(flat, np.int64)
        starts = np.cumsum(lens) - lens
        pos = np.arange(len(ids)) - np.repeat(starts, lens)
        keys = np.repeat(np.arange(len(lens), dtype=np.int64) * self.capacity, lens) + ids
        ok = ids >= 0
        return keys[ok], pos[ok]

    def group(self, keys: NDArray[np.int64]) -> NDArray[np.int64]:
        """For each of ``keys`` (at most ``CHUNK_USERS * capacity``), the position of the last entry
        holding the same key: entries whose own position comes back are the representatives."""
        stamp = self._stamp
        stamp[keys] = np.arange(len(keys), dtype=np.int32)
        return stamp[keys].astype(np.int64)

    def lookup(self, keys: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Index into ``table`` (a key array) of each of ``keys``, or -1 when absent."""
        n = len(table)
        out = np.full(len(keys), -1, np.int64)
        if n == 0 or len(keys) == 0:
            return out
        stamp = self._stamp
        stamp[table] = np.arange(n, dtype=np.int32)
        at = stamp[keys].astype(np.int64)
        ok = (at >= 0) & (at < n)
        at_ok = np.where(ok, at, 0)
        ok &= table[at_ok] == keys
        out[ok] = at_ok[ok]
        return out

    def votes(self, users: Sequence[UserContext], n_top: int) -> Votes:
        """Aggregate the co-occurrence votes of ``users`` (at most :data:`CHUNK_USERS`)."""
        cooc = self.cooc
        ctx = cooc.context
        contexts = [user.recent_items[-ctx:][::-1] for user in users]
        lens0 = np.array([len(c) for c in contexts], np.int64)
        flat = np.array(list(map(self.ids.get, chain.from_iterable(contexts), repeat(-1))), np.int64)
        known = flat >= 0
        rows = flat[known]
        owner = np.repeat(np.arange(len(users), dtype=np.int64), lens0)[known]
        age = (np.arange(len(flat)) - np.repeat(np.cumsum(lens0) - lens0, lens0))[known]
        n_users = len(users)
        rows_a = rows
        lens = self.nb_len[rows_a]
        n = int(lens.sum())
        if n == 0:
            empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
            return Votes(empty_i, empty_i, empty_i, empty_f, np.ones(n_users), empty_i, empty_f, empty_f)
        age_a = age
        fac = self._pows[age_a] / (self.totals[rows_a] + cooc.smoothing)
        ends = np.cumsum(lens)
        col = np.arange(n) - np.repeat(ends - lens, lens)
        rr = np.repeat(rows_a, lens)
        items = self.nb_idx[rr, col].astype(np.int64)
        vals = self.nb_w[rr, col] * np.repeat(fac, lens)
        uu = np.repeat(owner, lens)
        latest = np.repeat(age_a == 0, lens)
        if self._dying_ids:  # rows not swept yet may still name items being forgotten
            ok = self.alive[items]
            items, vals, uu, latest = items[ok], vals[ok], uu[ok], latest[ok]
            n = len(items)
        keys = uu * self.capacity + items
        ar = np.arange(n, dtype=np.int32)
        stamp = self._stamp
        stamp[keys] = ar
        rep = stamp[keys]
        sums = np.bincount(rep, vals, n)
        last = np.bincount(rep, np.where(latest, vals, 0.0), n)
        first = rep == ar
        gk, gv, gl, gu = keys[first], sums[first], last[first], uu[first]
        # best first per user; a tiny position term makes ties break the same in any wave
        pos_in_user = np.arange(len(gk)) - np.repeat(np.cumsum(np.bincount(gu, minlength=n_users)) -
                                                     np.bincount(gu, minlength=n_users),
                                                     np.bincount(gu, minlength=n_users))
        order = np.argsort(-gv + pos_in_user * 1e-15)
        order = order[np.argsort(gu[order].astype(np.int16), kind="stable")]
        cnt = np.bincount(gu, minlength=n_users)
        starts = np.cumsum(cnt) - cnt
        su = gu[order]
        rank = np.arange(len(order)) - starts[su]
        keep = order[rank < n_top]
        best = np.ones(n_users)
        has = cnt > 0
        best[has] = gv[order[starts[has]]]
        return Votes(gu[keep], gk[keep] - gu[keep] * self.capacity, rank[rank < n_top], gv[keep], best, gk, gv, gl)
