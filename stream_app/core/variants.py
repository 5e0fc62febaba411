"""Making the lists of a batch of users, each the way its variant says (one batched ranking call
per variant, see :mod:`stream_app.core.experiments`).

Without an experiment every user gets the default: the hybrid ranker with the deep model, under
the worker's rules. The pushed lists (:meth:`stream_app.core.pipeline.Pipeline.score`) and the
lists on request (:mod:`stream_app.core.on_request`) both come from :func:`rank_lists`, so what
a variant is measured on is what it serves.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from models.base import UserContext
from models.deep.candidates import select as select_deep
from models.filters.rules import ListFilter
from stream_app.core.experiments import Experiment, Variant, draft_rng, team_draft

if TYPE_CHECKING:
    from models.hybrid import HybridRecommender
    from models.rerank.online import DeepLists

Sourced = tuple[str, float, str]
DEFAULT = Variant("default")


@dataclass
class Made:
    """One user's list: its items, the variant it was made for, and (interleaved) each item's team."""

    items: list[Sourced]
    variant: str | None
    teams: dict[str, str] | None = None


class Lists:
    """The ranker, the worker's filter and the experiment: everything a list is made of."""

    def __init__(self, filter: ListFilter, experiment: Experiment | None = None) -> None:
        self.filter = filter
        self.experiment: Experiment | None = None
        self._filters: dict[str, ListFilter] = {}
        self.set_experiment(experiment)

    def set_experiment(self, experiment: Experiment | None) -> None:
        """Run ``experiment`` (None: none). A variant with rules of its own gets a filter of its own
        over the worker's catalogue."""
        self.experiment = experiment
        self._filters = {}
        if experiment is not None:
            only = self.filter.rules.catalogued_only  # a worker-wide setting holds in every variant
            for v in experiment.variants:
                if v.rules is not None:
                    rules = replace(v.rules, catalogued_only=True) if only else v.rules
                    self._filters[v.name] = ListFilter(self.filter.catalogue, rules)

    def variant_of(self, user_id: str) -> str:
        """The name of the user's variant (the experiment must be set)."""
        assert self.experiment is not None
        return self.experiment.assign(user_id).name

    def assign(self, user_ids: Sequence[str]) -> list[Variant]:
        exp = self.experiment
        return [DEFAULT] * len(user_ids) if exp is None else [exp.assign(u) for u in user_ids]

    def for_session(self) -> Variant:
        """The variant of an anonymous session (no user id to split by): the experiment's first
        variant that makes lists of its own (its control)."""
        exp = self.experiment
        if exp is None:
            return DEFAULT
        return next((v for v in exp.variants if v.interleave is None and v.share > 0), exp.variants[0])

    def filter_of(self, variant: Variant) -> ListFilter:
        return self._filters.get(variant.name, self.filter)

    @property
    def dropped(self) -> int:
        """Candidates every filter dropped so far."""
        return self.filter.dropped + sum(f.dropped for f in self._filters.values())


def rank_lists(
    lists: Lists,
    ranker: HybridRecommender,
    users: Sequence[UserContext],
    excludes: Sequence[Collection[str]],
    k: int,
    now: float,
    variants: Sequence[Variant],
    seeds: Sequence[str],
    deep_lists: DeepLists | None = None,
    keep: Callable[[str], bool] | None = None,
    fetch_scale: int = 1,
) -> list[Made]:
    """Each user's top ``k``, made as the user's variant says.

    ``seeds`` (one per user, e.g. the event id) seed the coin of an interleaving; ``deep_lists``
    are the batch's precomputed deep candidates; ``keep`` drops candidates before the rules (a
    request's category; ``fetch_scale`` times more are then ranked).
    """
    exp = lists.experiment
    base: dict[str, list[int]] = {}  # variant name -> positions that need its list
    for j, v in enumerate(variants):
        for name in v.interleave or (v.name,):
            base.setdefault(name, []).append(j)
    made: dict[tuple[str, int], list[Sourced]] = {}
    for name, pos in base.items():
        v = DEFAULT if exp is None or name == DEFAULT.name else exp.variant(name)
        filt = lists.filter_of(v)
        fetch = filt.fetch(k) * fetch_scale
        us = [users[j] for j in pos]
        ex = [excludes[j] for j in pos]
        if v.system == "hybrid":
            dl: DeepLists | None = None
            if ranker.deep is not None:
                dl = select_deep(deep_lists, pos) if deep_lists is not None and v.deep else None
                if not v.deep:
                    dl = [[] for _ in pos]  # no deep candidates for this variant
            ranked = ranker.rank_many_with_sources(us, fetch, ex, dl)
        else:
            model = ranker.popularity if v.system == "popularity" else ranker.cooccurrence
            ranked = [[(i, s, v.system) for i, s in r] for r in model.rank_many(us, fetch, ex)]
        for j, r in zip(pos, ranked):
            if keep is not None:
                r = [c for c in r if keep(c[0])]
            made[(name, j)] = filt.apply(r, k, now) if filt.active else r[:k]
    out: list[Made] = []
    for j, v in enumerate(variants):
        label = None if exp is None else v.name
        if v.interleave is None:
            out.append(Made(made[(v.name, j)], label))
        else:
            a, b = v.interleave
            items, teams = team_draft(made[(a, j)], made[(b, j)], k, draft_rng(users[j].user_id, seeds[j]))
            out.append(Made(items, label, teams))
    return out
