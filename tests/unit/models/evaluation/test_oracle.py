"""The oracle is judged like every system: planted laws give known figures, exclusions hold for it too."""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence

import pytest

from models.base import Interaction
from models.evaluation.oracle import Oracle
from models.evaluation.prequential import evaluate
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender

N_ITEMS = 30


class ChainLaw:
    """A planted law: after item ``n`` the user touches ``n`` again with ``p_same``, else ``n + 1``."""

    def __init__(self, p_same: float) -> None:
        self.p_same = p_same
        self.last: dict[str, int] = {}

    def observe(self, event: Interaction) -> None:
        self.last[event.user_id] = int(event.item_id)

    def _law(self, user_id: str) -> list[tuple[str, float]]:
        n = self.last.get(user_id)
        if n is None:
            return []
        return sorted([(str(n), self.p_same), (str((n + 1) % N_ITEMS), 1.0 - self.p_same)], key=lambda r: -r[1])

    def probability(self, user_id: str, item_id: str) -> float:
        return dict(self._law(user_id)).get(item_id, 0.0)

    def most_likely_many(self, user_ids: Sequence[str], k: int,
                         excludes: Sequence[Collection[str]]) -> list[list[tuple[str, float]]]:
        return [[r for r in self._law(u) if r[0] not in ex][:k] for u, ex in zip(user_ids, excludes)]


def chain_stream(p_same: float, n: int = 3000, users: int = 12, seed: int = 0) -> list[Interaction]:
    """Users walk the chain of :class:`ChainLaw`, interleaved at random."""
    rng = random.Random(seed)
    pos = {f"u{u}": rng.randrange(N_ITEMS) for u in range(users)}
    out = []
    for t in range(n):
        u = f"u{rng.randrange(users)}"
        if rng.random() >= p_same:
            pos[u] = (pos[u] + 1) % N_ITEMS
        out.append(Interaction(u, str(pos[u]), "view" if rng.random() < 0.7 else "click", float(t)))
    return out


def repeats(events: list[Interaction]) -> tuple[int, int]:
    """Judged events (a user's second and later) and how many of them repeat the user's previous item."""
    last: dict[str, str] = {}
    judged = same = 0
    for ev in events:
        if ev.user_id in last:
            judged += 1
            same += last[ev.user_id] == ev.item_id
        last[ev.user_id] = ev.item_id
    return judged, same


def test_a_planted_law_gives_the_expected_hr_exactly():
    # the law's successor is always right when the user moves on: every judged event that is
    # not a repeat is a hit at position 0 (the repeat, more likely, is excluded as just touched)
    events = chain_stream(p_same=0.6)
    judged, same = repeats(events)
    out = evaluate(events, {"oracle": Oracle(ChainLaw(0.6))}, batch_size=8, progress=False)["systems"]["oracle"]
    assert out["evaluated"] == judged and 0 < same < judged
    assert out["hr@10"] == pytest.approx((judged - same) / judged)
    assert out["ndcg@10"] == pytest.approx(out["hr@10"]) and out["mrr@20"] == pytest.approx(out["hr@10"])


def test_the_most_likely_item_gets_no_credit_when_it_is_the_one_just_touched():
    # without exclusions the law's first choice would be the repeat (0.6); the replay leaves it out
    # for the oracle as for every system, so the repeats are never credited
    events = chain_stream(p_same=0.6)
    judged, same = repeats(events)
    law = ChainLaw(0.6)
    assert law.most_likely_many(["nobody"], 10, [()]) == [[]]
    out = evaluate(events, {"oracle": Oracle(law)}, progress=False)["systems"]["oracle"]
    assert out["hr@10"] <= (judged - same) / judged + 1e-12


def test_the_oracle_beats_every_system_on_a_planted_stream():
    events = chain_stream(p_same=0.2, n=4000)
    systems = {"popularity": PopularityRecommender(), "cooccurrence": CooccurrenceRecommender(),
               "oracle": Oracle(ChainLaw(0.2))}
    res = evaluate(events, systems, batch_size=16, warmup=500, progress=False)["systems"]
    for name in ("popularity", "cooccurrence"):
        assert res["oracle"]["evaluated"] == res[name]["evaluated"]
        assert res["oracle"]["ndcg@10"] > res[name]["ndcg@10"], name
    # and its NDCG is what a first-place hit on every move-on event gives
    assert res["oracle"]["ndcg@10"] == pytest.approx(res["oracle"]["hr@10"] / math.log2(2))
