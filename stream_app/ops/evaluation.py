"""``streamrec eval``: prequential (test-then-train) evaluation of every system on one dataset.

The replay goes through the same model code the worker runs. The deep model is retrained on the
events seen so far every ``retrain_every`` events, as the periodic trainer does in production;
scoring starts once the first deep model exists, so every system is judged on the same events.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import orjson

from models.base import Interaction, Ranked, Recommender, UserContext
from models.evaluation.prequential import evaluate
from models.hybrid import HybridRecommender
from models.rerank.online import OnlineRanker
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender

log = logging.getLogger(__name__)
SYSTEMS = ("popularity", "cooccurrence", "online", "deep", "hybrid")


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


def build_systems(half_life: float | None) -> dict[str, Recommender]:
    return {
        "popularity": PopularityRecommender(half_life=half_life),
        "cooccurrence": CooccurrenceRecommender(fallback=PopularityRecommender(half_life=half_life)),
        "online": OnlineRanker(popularity=PopularityRecommender(half_life=half_life)),
        "deep": NotTrainedYet(),
        "hybrid": HybridRecommender(popularity=PopularityRecommender(half_life=half_life)),
    }


def run_eval(
    events: Sequence[Interaction],
    dataset: str,
    retrain_every: int | None = None,
    epochs: int = 5,
    device: str | None = None,
    half_life: float | None = None,
    every: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate all systems side by side in one replay; returns the contract JSON."""
    from models.deep.train import TrainConfig, train

    n = len(events)
    if n < 100:
        raise EvaluationError(f"{dataset}: only {n} events; evaluation needs at least 100")
    retrain_every = retrain_every or max(50, n // 5)
    trainings: list[dict[str, Any]] = []

    def retrain(history: Sequence[Interaction]) -> Recommender:
        t0 = time.perf_counter()
        result = train(list(history), TrainConfig(epochs=epochs), device=device, progress=False)
        version = f"eval-{len(history)}"
        trainings.append({"events": len(history), "seconds": round(time.perf_counter() - t0, 2),
                          "epoch_seconds": [round(s, 3) for s in result.epoch_seconds],
                          "holdout": result.metrics, "device": result.device})
        log.info("retrained the deep model on %d events in %.1fs", len(history), time.perf_counter() - t0)
        return result.recommender(version)

    started = time.time()
    res = evaluate(events, build_systems(half_life), k=20, every=every, warmup=retrain_every,
                   retrain_every=retrain_every, retrain=retrain, progress=progress, total=n)
    return {
        "dataset": dataset,
        "events": res["events"],
        "evaluated_from_event": retrain_every,
        "systems": res["systems"],
        "retrain_every": retrain_every,
        "trainings": trainings,
        "seconds": round(res["seconds"], 1),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "started_at": started,
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def markdown_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table (one row per system)."""
    rows = [f"**{result['dataset']}** - {result['events']:,} events, scored from event "
            f"{result['evaluated_from_event']:,}, deep model retrained every {result['retrain_every']:,} events",
            "",
            "| system | HR@10 | NDCG@10 | MRR@20 | coverage | novelty | diversity |",
            "|---|---|---|---|---|---|---|"]
    best = max(result["systems"].values(), key=lambda m: m["ndcg@10"])["ndcg@10"]
    for name, m in result["systems"].items():
        nd = f"**{m['ndcg@10']:.4f}**" if m["ndcg@10"] == best else f"{m['ndcg@10']:.4f}"
        rows.append(f"| {name} | {m['hr@10']:.4f} | {nd} | {m['mrr@20']:.4f} | {m['coverage']:.3f} | "
                    f"{m['novelty']:.2f} | {m['diversity']:.3f} |")
    return "\n".join(rows) + "\n"


def write_result(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
