"""``streamrec eval``: prequential (test-then-train) evaluation of every system on one dataset.

The replay goes through the same model code the worker runs and excludes what the worker
excludes (:func:`models.exclusions.exclusions`: the item just touched and every purchased item,
plus every item already seen where the dataset's format says so). It is run once per seed: each
seed puts events with equal ``ts`` in its own random order
(:func:`models.evaluation.prequential.shuffle_ties`) and seeds the models (the rerankers'
sampled negatives, the deep model's training). The deep model is retrained on the events seen
so far every ``retrain_every`` events, as the periodic trainer does in production; scoring
starts once the first deep model exists, so every system is judged on the same events.

The result keeps the contract's fields (``dataset``, ``events``, ``systems`` with ``hr@10``,
``ndcg@10``, ``mrr@20``, ``coverage`` per system, now means over the seeds) and adds per system
``sd`` (sample standard deviation over the seeds) and ``per_fifth`` (the metrics per fifth of
the scored events), and ``seeds``, ``protocol``, ``per_seed`` and ``hybrid_vs_best`` (a per-user
bootstrap interval of the NDCG@10 difference between the hybrid and the best other system).

Given an ``oracle`` (a factory of a fresh :class:`models.evaluation.oracle.Oracle` per seed: on a
synthetic stream, the generator's own next-item probabilities), the replay judges an ``oracle``
system too, through the same ranking, exclusions and judging as the others, and every system
gets ``share_of_oracle`` (its mean NDCG@10 over the oracle's) with ``share_of_oracle_sd`` (the
spread of the per-seed shares). The oracle is the ceiling, never the "best other system" of
``hybrid_vs_best``.
"""

from __future__ import annotations

import logging
import platform
import statistics
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from models.base import Interaction, Ranked, Recommender, UserContext
from models.evaluation.metrics import paired_bootstrap
from models.evaluation.prequential import evaluate, shuffle_ties
from models.filters.rules import ListFilter
from models.hybrid import HybridRecommender
from models.rerank.online import OnlineRanker
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender

log = logging.getLogger(__name__)
SYSTEMS = ("popularity", "cooccurrence", "online", "deep", "hybrid")
ORACLE = "oracle"
"""The name of the ceiling system (judged when an oracle is given)."""
OracleFactory = Callable[[], Recommender]
ListFilterFactory = Callable[[], ListFilter]
METRICS = ("hr@10", "ndcg@10", "mrr@20", "coverage", "novelty", "diversity")
"""The metrics averaged over seeds, with their spread in ``sd``."""
FIFTH_METRICS = ("hr@10", "ndcg@10", "mrr@20")
BOOTSTRAP_RESAMPLES = 2000
WAVE = 64
"""Events of distinct users learned, then ranked in one batched call (as a worker's micro-batch round)."""


class EvaluationError(ValueError):
    """The events cannot be evaluated as asked (e.g. too few); the message says why in one line."""


class NotTrainedYet(Recommender):
    """Stands in for the deep model until the first retraining (ranks nothing)."""

    name = "deep"

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        return None

    def predict_one(self, user: UserContext, item_id: str) -> float:
        return 0.0

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        return []


def build_systems(half_life: float | None, seed: int = 0,
                  oracle: OracleFactory | None = None) -> dict[str, Recommender]:
    """The five systems, fresh, their randomness seeded with ``seed`` (and a fresh oracle when given)."""
    systems: dict[str, Recommender] = {
        "popularity": PopularityRecommender(half_life=half_life),
        "cooccurrence": CooccurrenceRecommender(fallback=PopularityRecommender(half_life=half_life)),
        "online": OnlineRanker(popularity=PopularityRecommender(half_life=half_life), seed=seed),
        "deep": NotTrainedYet(),
        "hybrid": HybridRecommender(popularity=PopularityRecommender(half_life=half_life), seed=seed),
    }
    if oracle is not None:
        systems[ORACLE] = oracle()
    return systems


def protocol(exclude_seen: bool, seeds: Sequence[int], warmup: int, every: int, wave: int = WAVE,
             oracle: bool = False) -> dict[str, Any]:
    """What the replay judges and excludes, in words (the JSON's ``protocol``)."""
    excluded = ["the item of the event just learned (the item just touched)", "every item the user purchased"]
    if exclude_seen:
        excluded.append("every item the user interacted with before (the dataset's format asks for it)")
    ranked = "after every event" if every == 1 else f"after every {every}-th event"
    out: dict[str, Any] = {
        "excluded": excluded,
        "exclusions": "models.exclusions.exclusions, the function the worker's scorer uses",
        "exclude_seen": exclude_seen,
        "ranked": (f"{ranked}, for the user's context after it, once every system has learned it; waves of up "
                   f"to {wave} events of distinct users are learned, then ranked together (a worker's "
                   "micro-batch round)"),
        "judged": (f"each user's next event against the list ranked after the user's previous event, when that "
                   f"event is at index {warmup} or later (the first deep model exists); a user's first event "
                   "is never judged"),
        "ties": "events with equal ts are replayed in a random order drawn from the seed (never by id or file order)",
        "seeds": list(seeds),
        "seed_controls": ["the order of tied events", "the rerankers' sampled negatives", "the deep model's training"],
    }
    if oracle:
        out["oracle"] = ("ranks by the stream's true probability of being the user's next item (the synthetic "
                         "generator's own), under the same exclusions, ranked and judged like every system")
    return out


@dataclass(frozen=True)
class Schedule:
    """When the replay retrains the deep model, and how.

    The first model is trained from scratch after event ``first`` (scoring starts there); later
    ones every ``every`` events, from scratch with ``epochs``, or with ``warm_epochs`` set warm-
    started from the model being served (:mod:`models.deep.warm`).
    """

    first: int
    every: int
    epochs: int = 5
    warm_epochs: int = 0
    """0: every retraining from scratch."""
    device: str | None = None

    def describe(self) -> str:
        how = (f"warm-started from the serving model ({self.warm_epochs} epoch(s) on recent events)"
               if self.warm_epochs else f"from scratch ({self.epochs} epoch(s) at most)")
        return (f"first trained from scratch after event {self.first:,} ({self.epochs} epoch(s) at most), "
                f"then retrained every {self.every:,} events {how}")


def _one_seed(events: Sequence[Interaction], seed: int, schedule: Schedule,
              half_life: float | None, every: int, exclude_seen: bool, batch_size: int, progress: bool,
              trainings: list[dict[str, Any]], oracle: OracleFactory | None,
              list_filter: ListFilterFactory | None = None) -> dict[str, Any]:
    from models.deep.train import TrainConfig, TrainResult, train
    from models.deep.warm import Start, warm_train

    last: list[TrainResult] = []

    def retrain(history: Sequence[Interaction]) -> Recommender:
        t0 = time.perf_counter()
        warm = bool(schedule.warm_epochs and last)
        if warm:
            result = warm_train(list(history), Start.of(last[-1]), schedule.warm_epochs, schedule.device,
                                progress=False, seed=seed)
        else:
            result = train(list(history), TrainConfig(epochs=schedule.epochs, seed=seed), device=schedule.device,
                           progress=False)
        last[:] = [result]
        version = f"eval-{seed}-{len(history)}"
        trainings.append({"seed": seed, "events": len(history), "seconds": round(time.perf_counter() - t0, 2),
                          "warm": warm, "epoch_seconds": [round(s, 3) for s in result.epoch_seconds],
                          "holdout": result.metrics, "device": result.device})
        log.info("seed %d: retrained the deep model on %d events in %.1fs%s", seed, len(history),
                 time.perf_counter() - t0, " (warm start)" if warm else "")
        return result.recommender(version)

    ordered = shuffle_ties(events, seed)
    return evaluate(ordered, build_systems(half_life, seed, oracle), k=20, every=every, warmup=schedule.first,
                    exclude_seen=exclude_seen, batch_size=batch_size, retrain_every=schedule.every,
                    retrain_from=schedule.first, retrain=retrain, parts=5, per_user=True, progress=progress,
                    desc=f"seed {seed}", total=len(ordered),
                    list_filter=list_filter() if list_filter is not None else None)


def run_eval(
    events: Sequence[Interaction],
    dataset: str,
    retrain_every: int | None = None,
    epochs: int = 5,
    device: str | None = None,
    half_life: float | None = None,
    every: int = 1,
    progress: bool = True,
    *,
    seeds: int | Sequence[int] = 3,
    exclude_seen: bool = False,
    batch_size: int = WAVE,
    oracle: OracleFactory | None = None,
    list_filter: ListFilterFactory | None = None,
    first_train: int | None = None,
    warm_epochs: int = 0,
) -> dict[str, Any]:
    """Evaluate all systems side by side, one replay per seed; returns the contract JSON.

    The first deep model is trained after ``first_train`` events (default: a fifth of them,
    at least 50), where judging starts; then one every ``retrain_every`` events (default: the
    same as ``first_train``), from scratch, or warm-started with ``warm_epochs`` epochs on the
    recent events when ``warm_epochs`` is set.

    ``list_filter`` builds the item catalogue and rules the worker would apply (a fresh one per
    seed): every list is then filtered as the worker filters what it pushes, and each system also
    reports ``categories@10``, the distinct categories of its top-10 lists.

    ``seeds`` is a count (seeds ``0 .. n-1``) or the seeds themselves; ``exclude_seen`` also
    excludes every item the user has touched (the dataset format's ``exclude_seen``); ``oracle``
    builds the ceiling system, a fresh one per seed (see the module doc).
    """
    n = len(events)
    if n < 100:
        raise EvaluationError(f"{dataset}: only {n} events; evaluation needs at least 100")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise EvaluationError("at least one seed is needed")
    first = first_train or max(50, n // 5)
    schedule = Schedule(first, retrain_every or first, epochs, warm_epochs, device)
    trainings: list[dict[str, Any]] = []
    started = time.time()
    t0 = time.perf_counter()
    runs = [_one_seed(events, s, schedule, half_life, every, exclude_seen, batch_size, progress,
                      trainings, oracle, list_filter) for s in seed_list]
    systems = _aggregate(runs)
    return {
        "dataset": dataset,
        "events": runs[0]["events"],
        "systems": systems,
        "seeds": seed_list,
        "protocol": {**protocol(exclude_seen, seed_list, first, every, batch_size, oracle is not None),
                     "retraining": schedule.describe()},
        "hybrid_vs_best": hybrid_vs_best(runs, systems),
        "per_seed": [{"seed": s, "seconds": round(r["seconds"], 1),
                      "systems": {name: {m: r["systems"][name][m] for m in METRICS}
                                  for name in r["systems"]}}
                     for s, r in zip(seed_list, runs)],
        "evaluated_from_event": first,
        "retrain_every": schedule.every,
        "warm_epochs": warm_epochs,
        "training_seconds": round(sum(t["seconds"] for t in trainings), 1),
        "trainings": trainings,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "started_at": started,
    }


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _sd(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per system: the mean over seeds of every metric, their ``sd`` and the per-fifth means."""
    out: dict[str, dict[str, Any]] = {}
    for name in runs[0]["systems"]:
        per = [r["systems"][name] for r in runs]
        res: dict[str, Any] = {m: _mean([p[m] for p in per]) for m in METRICS}
        res["evaluated"] = _mean([p["evaluated"] for p in per])
        res["rank_ms"] = _mean([p["rank_ms"] for p in per])
        if "categories@10" in per[0]:
            res["categories@10"] = _mean([p["categories@10"] for p in per])
        res["sd"] = {m: _sd([p[m] for p in per]) for m in METRICS}
        fifths = []
        for i, part in enumerate(per[0]["per_part"]):
            rows = [p["per_part"][i] for p in per]
            row: dict[str, Any] = {"from_event": part["from_event"], "to_event": part["to_event"],
                                   "evaluated": _mean([r["evaluated"] for r in rows])}
            for m in FIFTH_METRICS:
                vals = [r[m] for r in rows if r[m] is not None]
                row[m] = _mean(vals) if vals else None
                row[f"{m}_sd"] = _sd(vals) if vals else None
            fifths.append(row)
        res["per_fifth"] = fifths
        res["newer_than_deep"] = _newer([p.get("newer_than_deep") for p in per])
        out[name] = res
    if ORACLE in out:
        _add_shares(out, runs)
    return out


def _newer(rows: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """The seeds' figures on events whose item the served deep model did not know (means over seeds)."""
    got = [r for r in rows if r is not None and r["evaluated"]]
    out: dict[str, Any] = {"evaluated": _mean([r["evaluated"] for r in got]) if got else 0.0}
    for m in ("hr@10", "ndcg@10"):
        out[m] = _mean([r[m] for r in got]) if got else None
    return out


def _add_shares(systems: dict[str, dict[str, Any]], runs: Sequence[dict[str, Any]]) -> None:
    """Every system's NDCG@10 as a share of the oracle's: of the means, and the sd of the per-seed shares."""
    ceiling = systems[ORACLE]["ndcg@10"]
    per_seed_ceiling = [r["systems"][ORACLE]["ndcg@10"] for r in runs]
    for name, res in systems.items():
        res["share_of_oracle"] = res["ndcg@10"] / ceiling if ceiling > 0 else None
        shares = [r["systems"][name]["ndcg@10"] / c for r, c in zip(runs, per_seed_ceiling) if c > 0]
        res["share_of_oracle_sd"] = _sd(shares) if shares else None


def hybrid_vs_best(runs: Sequence[dict[str, Any]], systems: dict[str, dict[str, Any]],
                   resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any] | None:
    """NDCG@10 of ``hybrid`` minus the best other system's, with a per-user bootstrap 95% interval.

    Users are resampled (each user's events of every seed together); the statistic is the mean
    over seeds of the difference, which is the difference of the reported means.
    """
    others = [name for name in systems if name not in ("hybrid", ORACLE)]
    if "hybrid" not in systems or not others:
        return None
    other = max(others, key=lambda name: systems[name]["ndcg@10"])
    users = sorted({u for r in runs for u in r["per_user"]["hybrid"]})
    counts, diffs = [], []
    for r in runs:
        hyb, oth = r["per_user"]["hybrid"], r["per_user"][other]
        counts.append([hyb.get(u, (0.0, 0.0))[0] for u in users])
        diffs.append([hyb.get(u, (0.0, 0.0))[1] - oth.get(u, (0.0, 0.0))[1] for u in users])
    if not users or any(sum(c) == 0 for c in counts):
        return None
    diff, lo, hi = paired_bootstrap(counts, diffs, resamples=resamples, seed=0)
    return {"other": other, "diff": diff, "ci95": [lo, hi], "users": len(users), "resamples": resamples,
            "resampled": "users (all seeds of a user together)"}


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _pm(m: dict[str, Any], key: str, digits: int) -> str:
    return f"{m[key]:.{digits}f} ± {m['sd'][key]:.{digits}f}"


def _warm_words(result: dict[str, Any]) -> str:
    warm = result.get("warm_epochs") or 0
    return f" (warm-started, {warm} epoch(s) on recent events)" if warm else ""


def markdown_table(result: dict[str, Any]) -> str:
    """The result as Markdown: mean ± sd over the seeds per system, NDCG@10 per fifth, the hybrid's margin."""
    seeds = result.get("seeds", [0])
    excluded = "; ".join(result["protocol"]["excluded"]) if "protocol" in result else "purchased items"
    judged = f"{next(iter(result['systems'].values())).get('evaluated', 0):,.0f} judged" if result["systems"] else ""
    shares = ORACLE in result["systems"]
    cats = all("categories@10" in m for m in result["systems"].values()) and bool(result["systems"])
    rows = [f"**{result['dataset']}** - {result['events']:,} events ({judged}: lists ranked from event "
            f"{result['evaluated_from_event']:,} on), deep model retrained every {result['retrain_every']:,} events"
            f"{_warm_words(result)}, mean ± sd over {len(seeds)} seed(s) {seeds}; excluded: {excluded}",
            "",
            "| system | HR@10 | NDCG@10 | MRR@20 | coverage | novelty | diversity |" + (" share of oracle |" * shares)
            + (" categories@10 |" * cats),
            "|---|---|---|---|---|---|---|" + "---|" * (shares + cats)]
    best = max((m for name, m in result["systems"].items() if name != ORACLE), key=lambda m: m["ndcg@10"],
               default={"ndcg@10": None})["ndcg@10"]
    for name, m in result["systems"].items():
        nd = _pm(m, "ndcg@10", 4)
        nd = f"**{nd}**" if m["ndcg@10"] == best and name != ORACLE else nd
        row = (f"| {name} | {_pm(m, 'hr@10', 4)} | {nd} | {_pm(m, 'mrr@20', 4)} | {_pm(m, 'coverage', 3)} | "
               f"{m['novelty']:.2f} | {m['diversity']:.3f} |")
        if shares:
            share, sd = m.get("share_of_oracle"), m.get("share_of_oracle_sd")
            row += " - |" if share is None else f" {share:.1%} ± {sd or 0.0:.1%} |"
        if cats:
            row += f" {m['categories@10']:.2f} |"
        rows.append(row)
    first = next(iter(result["systems"].values()))
    fifths = first.get("per_fifth") or []
    if fifths:
        rows += ["", "NDCG@10 per fifth of the scored events (mean over seeds):", "",
                 "| system | " + " | ".join(f"{f['from_event']:,}-{f['to_event']:,}" for f in fifths) + " |",
                 "|---|" + "---|" * len(fifths)]
        for name, m in result["systems"].items():
            cells = ["-" if f["ndcg@10"] is None else f"{f['ndcg@10']:.4f}" for f in m["per_fifth"]]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    newer = {name: m.get("newer_than_deep") or {} for name, m in result["systems"].items()}
    if any(n.get("evaluated") for n in newer.values()):
        judged_new = max(n.get("evaluated") or 0 for n in newer.values())
        rows += ["", f"On the {judged_new:,.0f} judged events whose item the served deep model did not know yet "
                     "(newer than its training): " + ", ".join(
                         f"{name} {n['ndcg@10']:.4f}" for name, n in newer.items() if n.get("ndcg@10") is not None)
                 + " (NDCG@10)."]
    hv = result.get("hybrid_vs_best")
    if hv:
        rows += ["", f"hybrid - {hv['other']} NDCG@10: {hv['diff']:+.4f}, per-user bootstrap 95% interval "
                     f"[{hv['ci95'][0]:+.4f}, {hv['ci95'][1]:+.4f}] ({hv['users']:,} users)"]
    rows.append(f"\n{result['seconds']:,.0f} s in all.")
    return "\n".join(rows) + "\n"


def write_result(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
