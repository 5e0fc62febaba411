"""Offline = online: the prequential replay's HR@10 is the HR@10 of the lists a real worker pushes.

One synthetic stream goes through a real worker on the real broker; each user's next event judges
the list pushed after the user's previous event. The same events go through the offline replay
(:func:`models.evaluation.prequential.evaluate`, in the waves ``streamrec eval`` uses) with the
worker's model and settings (no deep model: none is promoted). The two HR@10 must agree within three binomial standard errors of the
number of judged events; the worker interleaves users across partitions and micro-batches, the
replay does not, so only the order across users differs.
"""

from __future__ import annotations

import math

import orjson
import pytest

from models.base import Interaction
from models.evaluation.prequential import evaluate
from models.hybrid import HybridRecommender
from models.retrieval.popularity import PopularityRecommender
from stream_app.data.synthetic import generate
from stream_app.ops.evaluation import WAVE
from stream_app.ops.testbed import read_records, send_events
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration

N_EVENTS = 3000
HALF_LIFE_S = 86400.0
TOP_K = 10


def judge_pushed(events: list[dict], pushed: dict[str, list[str]]) -> tuple[int, int]:
    """(hits, judged): for each user's next event, was its item in the list pushed after the previous one?"""
    last: dict[str, str] = {}
    hits = judged = 0
    for ev in events:
        prev = last.get(ev["user_id"])
        if prev is not None:
            judged += 1
            hits += ev["item_id"] in pushed[prev][:10]
        last[ev["user_id"]] = ev["event_id"]
    return hits, judged


def test_offline_hr_matches_the_lists_the_worker_pushed(pipeline, workers):
    events = list(generate(N_EVENTS, n_users=150, n_items=500, seed=3))
    w = Worker(pipeline, STREAMREC_POPULARITY_HALF_LIFE_S=str(HALF_LIFE_S), STREAMREC_TOP_K=str(TOP_K))
    workers.append(w.start())
    send_events(pipeline.bootstrap, pipeline.events, events)
    recs = read_records(pipeline.bootstrap, pipeline.recommendations, len(events), timeout=180)
    pushed: dict[str, list[str]] = {}
    for r in recs:
        msg = orjson.loads(r.value)
        pushed.setdefault(msg["event_id"], [i["item_id"] for i in msg["items"]])
    assert set(pushed) == {e["event_id"] for e in events}, w.log_tail()
    hits, judged = judge_pushed(events, pushed)
    online = hits / judged

    offline_run = evaluate(
        [Interaction(e["user_id"], e["item_id"], e["type"], e["ts"]) for e in events],
        {"hybrid": HybridRecommender(popularity=PopularityRecommender(half_life=HALF_LIFE_S)),
         "popularity": PopularityRecommender(half_life=HALF_LIFE_S)},
        batch_size=WAVE,  # as streamrec eval replays
        progress=False,
    )["systems"]
    offline = offline_run["hybrid"]["hr@10"]
    assert offline_run["hybrid"]["evaluated"] == judged  # the same events are judged on both sides
    # non-trivial: far above a random list, and well above popularity
    assert offline > 0.1 and online > 1.5 * offline_run["popularity"]["hr@10"], (online, offline_run)
    se = math.sqrt(offline * (1.0 - offline) / judged)
    print(f"online HR@10 {online:.4f}, offline {offline:.4f}, 3 SE {3 * se:.4f}, judged {judged}")
    assert abs(online - offline) <= 3.0 * se, (online, offline, se, judged)
