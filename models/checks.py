"""The ranking contract of :mod:`models.base` as reusable checks, in the manner of River's ``checks``.

Every model class declares how to build it for checking with a ``check_params()`` classmethod
(it yields constructor keyword arguments, one dict per variant); :mod:`models.catalog` lists the
models; :func:`subjects` pairs the two, and :func:`yield_checks` gives the checks that apply to
a subject. A check is a plain function of a :class:`Subject` that raises ``AssertionError``
(or the error named) when the model breaks the contract, so it runs under pytest or anywhere::

    for subject in subjects():
        for check in yield_checks(subject):
            check(subject)

A subject trains its model once, on :func:`models.datasets.synthetic_stream` replayed the way
the worker does (:func:`replay`), and the checks that need a trained model share it.

>>> s = next(s for s in subjects() if s.label == "popularity")
>>> [c.__name__ for c in yield_checks(s)][:3]
['check_rank_obeys_contract', 'check_predict_one_matches_rank', 'check_rank_many_matches_rank']
>>> check_unknown_user_gets_recommendations(s)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import pairwise
from typing import Any, NamedTuple

from models.base import Interaction, Ranked, Recommender, UserContext
from models.catalog import MODELS
from models.checkpoint import CheckpointError
from models.datasets import synthetic_stream

Check = Callable[["Subject"], None]


def replay(model: Recommender, events: Sequence[Interaction], rank_every: int = 2) -> dict[str, UserContext]:
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


class Trained(NamedTuple):
    """A model trained on a subject's events, and every user's context after them."""

    model: Recommender
    contexts: dict[str, UserContext]


@dataclass
class Subject:
    """One model variant under check: its class and constructor arguments."""

    name: str
    """The model's name in :data:`models.catalog.MODELS`."""
    cls: type[Recommender]
    params: dict[str, Any] = field(default_factory=dict)
    events: list[Interaction] = field(default_factory=synthetic_stream)

    @property
    def label(self) -> str:
        """``name``, with the parameter names of a variant: ``hybrid(deep)``."""
        return f"{self.name}({','.join(self.params)})" if self.params else self.name

    def fresh(self) -> Recommender:
        """A new model that has learned nothing."""
        return self.cls(**self.params)

    @cached_property
    def trained(self) -> Trained:
        """The model after :func:`replay` of :attr:`events` (built once, shared by the checks)."""
        model = self.fresh()
        return Trained(model, replay(model, self.events))


def subjects() -> Iterator[Subject]:
    """Every variant of every model in :data:`models.catalog.MODELS`."""
    for name, cls in sorted(MODELS.items()):
        for params in cls.check_params():
            yield Subject(name, cls, dict(params))


# -- helpers ----------------------------------------------------------------------------------
def check_ranked(ranked: Ranked, k: int, exclude: Collection[str]) -> None:
    """At most ``k`` items, no duplicates, none excluded, scores never increasing."""
    items = [item for item, _ in ranked]
    scores = [s for _, s in ranked]
    assert len(ranked) <= k
    assert len(set(items)) == len(items), f"duplicates in {items}"
    assert not set(items) & set(exclude)
    assert all(a >= b for a, b in pairwise(scores)), f"scores increase: {scores}"


def _pretrained(model: Recommender) -> bool:
    """Whether the model holds a part trained elsewhere (a deep retriever), so it ranks from the start."""
    return getattr(model, "deep", None) is not None


def _restore(model: Recommender, data: bytes) -> Recommender:
    """``type(model).from_bytes(data)``, handing over a deep retriever (it is saved by its registry)."""
    from_bytes = getattr(type(model), "from_bytes")  # noqa: B009 - not part of the Recommender protocol
    deep = getattr(model, "deep", None)
    restored: Recommender = from_bytes(data, deep=deep) if deep is not None else from_bytes(data)
    return restored


def _to_bytes(model: Recommender) -> bytes:
    data = getattr(model, "to_bytes")()  # noqa: B009 - not part of the Recommender protocol
    assert isinstance(data, bytes)
    return data


# -- checks -----------------------------------------------------------------------------------
def check_rank_obeys_contract(s: Subject) -> None:
    """Bounds, no duplicates, no excluded items, ordering; a trained model fills short lists."""
    model, ctx = s.trained
    for user in list(ctx.values())[:10]:
        exclude = set(user.purchased) | set(user.recent_items[-3:])
        for k in (1, 5, 10, 25):
            ranked = model.rank(user, k=k, exclude=exclude)
            check_ranked(ranked, k, exclude)
            assert len(ranked) >= min(k, 5), "a trained model must fill short lists"


def check_predict_one_matches_rank(s: Subject) -> None:
    """``predict_one`` gives the score ``rank`` gave each item."""
    model, ctx = s.trained
    user = ctx["u3"]
    ranked = model.rank(user, k=10)
    assert ranked
    for item, score in ranked:
        got = model.predict_one(user, item)
        assert math.isclose(got, score, rel_tol=1e-6, abs_tol=1e-9), f"{item}: predict_one {got} != rank {score}"


def check_rank_many_matches_rank(s: Subject) -> None:
    """``rank_many`` gives what ``rank`` gives for each user, a new user included.

    Exactly, except with a deep network inside: its batched forward pass may round the last bits
    of a score differently from a single row's, so there the items must match and the scores agree
    to 1e-6.
    """
    model, ctx = s.trained
    users = [ctx["u1"], ctx["u2"], UserContext.empty("stranger")]
    excludes = [u.purchased for u in users]
    many = model.rank_many(users, 7, excludes)
    single = [model.rank(u, 7, ex) for u, ex in zip(users, excludes)]
    if not _pretrained(model):
        assert many == single
        return
    assert [[i for i, _ in r] for r in many] == [[i for i, _ in r] for r in single]
    for a, b in zip(many, single):
        assert all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) for (_, x), (_, y) in zip(a, b)), (a, b)


def check_checkpoint_round_trip(s: Subject) -> None:
    """A checkpoint (not a pickle) restores a model that ranks and scores exactly as the original."""
    model, ctx = s.trained
    data = _to_bytes(model)
    assert isinstance(data, bytes) and b"\x80\x03" not in data[:2]  # not a pickle
    restored = _restore(model, data)
    assert restored.version == model.version
    for user in [ctx["u0"], ctx["u7"], UserContext.empty("stranger")]:
        assert restored.rank(user, k=10, exclude=user.purchased) == model.rank(user, k=10, exclude=user.purchased)
        item = model.rank(user, k=1)[0][0]
        assert restored.predict_one(user, item) == model.predict_one(user, item)
    users = list(ctx.values())[:6]
    excludes = [u.purchased | {u.recent_items[-1]} for u in users]
    assert restored.rank_many(users, 10, excludes) == model.rank_many(users, 10, excludes)


def check_foreign_checkpoint_refused(s: Subject) -> None:
    """Another model's checkpoint, or bytes that are no checkpoint, raise :class:`CheckpointError`."""
    model = s.fresh()
    other = next(cls for _, cls in sorted(MODELS.items()) if cls is not type(model))
    for data in (_to_bytes(other()), b"not a checkpoint"):
        try:
            _restore(model, data)
        except CheckpointError:
            continue
        raise AssertionError(f"{type(model).__name__}.from_bytes accepted {data[:20]!r}")


def check_unknown_user_gets_recommendations(s: Subject) -> None:
    """A user never seen gets a full, valid list."""
    model, _ = s.trained
    ranked = model.rank(UserContext.empty("never-seen"), k=5)
    check_ranked(ranked, 5, ())
    assert len(ranked) == 5


def check_empty_model_ranks_without_crashing(s: Subject) -> None:
    """A model that has learned nothing ranks (nothing, unless part of it was trained elsewhere)."""
    model = s.fresh()
    user = UserContext("u", recent_items=("x", "y"), purchased=frozenset({"x"}))
    if _pretrained(model):
        check_ranked(model.rank(user, k=5), 5, ())
        lists = model.rank_many([user, UserContext.empty("v")], k=3)
        assert len(lists) == 2
        for ranked in lists:
            check_ranked(ranked, 3, ())
    else:
        assert model.rank(user, k=5) == []
        assert model.rank_many([user, UserContext.empty("v")], k=3) == [[], []]
    assert isinstance(model.predict_one(user, "x"), float)


def check_unknown_event_type_is_refused(s: Subject) -> None:
    """``learn_one`` of an event type outside the contract raises ``ValueError``."""
    model = s.fresh()
    try:
        model.learn_one(UserContext.empty("u"), Interaction("u", "i", "teleport", 1.0))
    except ValueError as exc:
        assert "unknown event type" in str(exc), exc
        return
    raise AssertionError("an unknown event type was accepted")


def check_sources(s: Subject) -> None:
    """``rank_many_with_sources`` names a known retriever for every item, the deep one when installed."""
    model, ctx = s.trained
    with_sources = getattr(model, "rank_many_with_sources")  # noqa: B009 - only yielded when present
    users = list(ctx.values())[:6]
    excludes = [u.purchased | {u.recent_items[-1]} for u in users]
    lists = with_sources(users, k=10, excludes=excludes)
    sources: set[str] = set()
    for lst, ex in zip(lists, excludes):
        check_ranked([(i, sc) for i, sc, _ in lst], 10, ex)
        sources.update(src for _, _, src in lst)
    assert sources <= {"deep", "cooccurrence", "popularity"}
    deep = getattr(model, "deep", None)
    if deep is not None:
        assert "deep" in sources
        assert getattr(model, "deep_version") == deep.version  # noqa: B009


def yield_checks(s: Subject) -> Iterator[Check]:
    """The checks that apply to ``s``, in a fixed order."""
    yield check_rank_obeys_contract
    yield check_predict_one_matches_rank
    yield check_rank_many_matches_rank
    yield check_checkpoint_round_trip
    yield check_foreign_checkpoint_refused
    yield check_unknown_user_gets_recommendations
    yield check_empty_model_ranks_without_crashing
    yield check_unknown_event_type_is_refused
    if hasattr(s.cls, "rank_many_with_sources"):
        yield check_sources
