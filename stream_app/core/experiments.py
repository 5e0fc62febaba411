"""Experiments between variants of the served lists.

An experiment (``STREAMREC_EXPERIMENTS_FILE``, a small JSON file) splits users between named
variants by a stable hash of the experiment's name and the user id, so a user stays in one
variant on every worker and across restarts, and a new experiment name reshuffles everyone.
A variant changes how its users' lists are made:

* ``system``: ``"hybrid"`` (the reranked blend, the default), ``"popularity"`` (the trending
  items) or ``"cooccurrence"`` (items that follow the user's recent ones);
* ``deep``: whether the deep model's candidates take part (default true);
* ``rules``: a rules object (as in ``STREAMREC_RULES_FILE``) that replaces the worker's rules for
  the variant's users (the catalogue's availability still applies);
* ``interleave``: two other variants' names; the variant's users get a team-draft interleaving of
  the two lists, and each interaction with an item of it credits the variant that contributed the
  item (see :func:`team_draft` and :mod:`stream_app.core.experiment_report`).

Every pushed message and every answer on request carries the user's ``variant``; the live quality
is kept per variant (:class:`stream_app.core.live.LiveQuality`).

>>> exp = Experiment.from_dict({"name": "deep-vs-not", "variants": [
...     {"name": "control"}, {"name": "no-deep", "deep": False},
...     {"name": "both", "share": 0.5, "interleave": ["control", "no-deep"]}]})
>>> exp.assign("u-1").name == exp.assign("u-1").name     # stable
True
>>> sorted({exp.assign(f"u-{i}").name for i in range(100)})
['both', 'control', 'no-deep']
>>> merged, teams = team_draft([("a", 3.0, "x"), ("b", 2.0, "x")], [("b", 1.0, "y"), ("c", 0.5, "y")], 3,
...                            random.Random(1))
>>> sorted(i for i, _, _ in merged), sorted(teams.values())
(['a', 'b', 'c'], ['a', 'b', 'b'])
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.filters.rules import Rules, RulesError
from models.jsonfile import read_json

Sourced = tuple[str, float, str]
SYSTEMS = ("hybrid", "popularity", "cooccurrence")
"""How a variant's lists are made (see the module's docstring)."""
TEAM_A, TEAM_B = "a", "b"


class ExperimentError(ValueError):
    """An experiments file that cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class Variant:
    name: str
    share: float = 1.0
    """The variant's weight in the split (shares need not add up to 1)."""
    system: str = "hybrid"
    deep: bool = True
    rules: Rules | None = None
    """Rules for this variant's users in place of the worker's (None: the worker's)."""
    interleave: tuple[str, str] | None = None
    """Two other variants whose lists are interleaved for this variant's users."""


VARIANT_KEYS = ("name", "share", "system", "deep", "rules", "interleave")


class Experiment:
    """Named variants and the split of users between them."""

    def __init__(self, name: str, variants: Sequence[Variant]) -> None:
        self.name = name
        self.variants = tuple(variants)
        total = sum(v.share for v in self.variants)
        bounds, acc = [], 0.0
        for v in self.variants:
            acc += v.share / total
            bounds.append(acc)
        self._bounds = tuple(bounds)
        self._by_name = {v.name: v for v in self.variants}
        self._salt = name.encode() + b"\x00"

    def assign(self, user_id: str) -> Variant:
        """The user's variant: a stable hash of the experiment's name and the user id."""
        digest = hashlib.blake2b(self._salt + user_id.encode(), digest_size=8).digest()
        x = int.from_bytes(digest, "big") / 2.0**64
        for v, b in zip(self.variants, self._bounds):
            if x < b and v.share > 0:
                return v
        return next(v for v in reversed(self.variants) if v.share > 0)

    def variant(self, name: str) -> Variant:
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each variant as the dashboard shows it: its share of users and how its lists are made."""
        total = sum(v.share for v in self.variants)
        out: dict[str, dict[str, Any]] = {}
        for v in self.variants:
            how = (f"interleaves {v.interleave[0]} (a) and {v.interleave[1]} (b)" if v.interleave
                   else f"{v.system}{'' if v.deep or v.system != 'hybrid' else ' without the deep model'}"
                        f"{', own rules' if v.rules is not None else ''}")
            out[v.name] = {"share": v.share / total, "lists": how,
                           "interleave": list(v.interleave) if v.interleave else None}
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "experiments") -> Experiment:
        """An experiment from parsed JSON; unknown keys, wrong types and dangling names are errors.

        >>> Experiment.from_dict({"name": "x", "variants": [{"name": "a", "sytem": "popularity"}, {"name": "b"}]})
        Traceback (most recent call last):
        ...
        stream_app.core.experiments.ExperimentError: experiments: variant 'a': unknown entry 'sytem'; known: deep, interleave, name, rules, share, system
        """
        if not isinstance(data, dict) or set(data) - {"name", "variants"}:
            raise ExperimentError(f'{where}: expected a JSON object {{"name": ..., "variants": [...]}}')
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ExperimentError(f"{where}: name must be a non-empty string (it salts the users' split)")
        raw = data.get("variants")
        if not isinstance(raw, list) or len(raw) < 2:
            raise ExperimentError(f"{where}: variants must be a list of at least two variants")
        variants = [_variant(v, i, where) for i, v in enumerate(raw)]
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ExperimentError(f"{where}: variant names must be unique, got {names}")
        for v in variants:
            if v.interleave is None:
                continue
            for other in v.interleave:
                if other not in names or other == v.name:
                    raise ExperimentError(f"{where}: variant {v.name!r} interleaves {other!r}, which is not "
                                          "another variant of the experiment")
                if next(x for x in variants if x.name == other).interleave is not None:
                    raise ExperimentError(f"{where}: variant {v.name!r} interleaves {other!r}, itself interleaved")
        if not sum(v.share for v in variants) > 0:
            raise ExperimentError(f"{where}: at least one variant needs a share above 0")
        return cls(name, tuple(variants))

    @classmethod
    def from_file(cls, path: Path) -> Experiment:
        """The experiment in a JSON file (``STREAMREC_EXPERIMENTS_FILE``)."""
        data = read_json(path, "experiments", "STREAMREC_EXPERIMENTS_FILE", ExperimentError)
        return cls.from_dict(data, str(path))


def _variant(v: Any, i: int, where: str) -> Variant:
    if not isinstance(v, dict):
        raise ExperimentError(f"{where}: variant {i} must be a JSON object")
    name = v.get("name")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ExperimentError(f"{where}: variant {i} needs a name (a string of 1 to 64 characters)")
    label = f"{where}: variant {name!r}"
    for key in v:
        if key not in VARIANT_KEYS:
            raise ExperimentError(f"{label}: unknown entry {key!r}; known: {', '.join(sorted(VARIANT_KEYS))}")
    share = v.get("share", 1.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share) or share < 0:
        raise ExperimentError(f"{label}: share must be a number >= 0, got {share!r}")
    system = v.get("system", "hybrid")
    if system not in SYSTEMS:
        raise ExperimentError(f"{label}: system must be one of {', '.join(SYSTEMS)}, got {system!r}")
    deep = v.get("deep", True)
    if not isinstance(deep, bool):
        raise ExperimentError(f"{label}: deep must be true or false")
    rules = None
    if "rules" in v:
        try:
            rules = Rules.from_dict(v["rules"], f"{label}: rules")
        except RulesError as exc:
            raise ExperimentError(str(exc)) from None
    pair = v.get("interleave")
    if pair is not None and (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(x, str) for x in pair)
                             or pair[0] == pair[1]):
        raise ExperimentError(f"{label}: interleave must name two different variants, e.g. [\"control\", \"new\"]")
    if pair is not None and ({"system", "deep", "rules"} & set(v)):
        raise ExperimentError(f"{label}: an interleaving variant takes its lists from the two it names; "
                              "leave out system, deep and rules")
    return Variant(name, float(share), system, deep, rules, None if pair is None else (pair[0], pair[1]))


def team_draft(a: Sequence[Sourced], b: Sequence[Sourced], k: int, rng: random.Random
               ) -> tuple[list[Sourced], dict[str, str]]:
    """Team-draft interleaving of two ranked lists: the team with fewer picks (a coin toss on a
    tie) adds its best item not yet in the list, until ``k`` items or both lists run out.

    Returns the interleaved list and each item's team (:data:`TEAM_A` or :data:`TEAM_B`).
    """
    merged: list[Sourced] = []
    teams: dict[str, str] = {}
    ia = ib = na = nb = 0
    while len(merged) < k:
        while ia < len(a) and a[ia][0] in teams:
            ia += 1
        while ib < len(b) and b[ib][0] in teams:
            ib += 1
        more_a, more_b = ia < len(a), ib < len(b)
        if not (more_a or more_b):
            break
        take_a = more_a and (not more_b or na < nb or (na == nb and rng.random() < 0.5))
        if take_a:
            merged.append(a[ia])
            teams[a[ia][0]] = TEAM_A
            na += 1
        else:
            merged.append(b[ib])
            teams[b[ib][0]] = TEAM_B
            nb += 1
    return merged, teams


def draft_rng(user_id: str, event_id: str) -> random.Random:
    """The coin of one interleaving: seeded by the user and the event, so a replay draws the same."""
    seed = int.from_bytes(hashlib.blake2b(f"{user_id}\x00{event_id}".encode(), digest_size=8).digest(), "big")
    return random.Random(seed)
