"""An experiment on the real broker: a stream where one variant is planted to be better (users
who cycle through items of their own, which the hybrid ranker learns and the trending list
cannot), every pushed message carrying its user's variant, and /metrics, /api/stats and the
dashboard in a real browser all saying the planted variant wins, directly and interleaved."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from stream_app.core.experiments import Experiment
from stream_app.ops.scaleout import metric
from stream_app.ops.testbed import event, read_records, send_events
from tests.integration.conftest import Worker
from tests.integration.test_dashboard import AUTH, TOKEN, attr, chromium, stats, wait_for

pytestmark = pytest.mark.integration

EXPERIMENT = {"name": "planted", "variants": [
    {"name": "hybrid"},
    {"name": "trending", "system": "popularity"},
    {"name": "both", "interleave": ["trending", "hybrid"]},
]}


def personal_stream(n_users: int, rounds: int, seed: int) -> list[dict]:
    """Each user cycles through four items of their own (nine events in ten), beside a popular head."""
    rng = random.Random(seed)
    out: list[dict] = []
    for r in range(rounds):
        users = list(range(n_users))
        rng.shuffle(users)
        for k in users:
            item = f"p{k}-{r % 4}" if rng.random() < 0.9 else f"head-{rng.randrange(5)}"
            out.append(event(len(out), f"u-{k}", item, "click"))
    return out


def test_a_planted_better_variant_wins_on_metrics_and_on_the_dashboard(pipeline, workers, kafka, tmp_path):
    spec = tmp_path / "experiment.json"
    spec.write_text(json.dumps(EXPERIMENT))
    w = Worker(pipeline, "w1", STREAMREC_EXPERIMENTS_FILE=str(spec), STREAMREC_AUTH_TOKEN=TOKEN)
    workers.append(w.start())
    events = personal_stream(240, 12, seed=5)
    send_events(kafka, pipeline.events, events)
    msgs = [orjson.loads(r.value) for r in read_records(kafka, pipeline.recommendations, len(events),
                                                          timeout=180, linger=1.0)]
    assert len({m["event_id"] for m in msgs}) == len(events), w.log_tail()
    exp = Experiment.from_dict(EXPERIMENT)
    assert all(m["variant"] == exp.assign(m["user_id"]).name for m in msgs)
    assert {m["variant"] for m in msgs} == {"hybrid", "trending", "both"}
    assert all(i["source"] == "popularity" for m in msgs if m["variant"] == "trending" for i in m["items"])

    # /metrics: the planted variant's HR@10 interval lies above the other's, and interleaved it wins
    def figures() -> dict | None:
        text = w.get("/metrics")[1].decode()
        judged = {v: metric(text, "streamrec_variant_lists_judged", variant=v) for v in ("hybrid", "trending", "both")}
        if min(judged.values()) < 500:
            return None
        return {"text": text, **judged}

    got = wait_for(figures, 60, "every variant's lists judged in /metrics", w)
    text = got["text"]
    hybrid_low = metric(text, "streamrec_variant_quality", variant="hybrid", figure="hr10", stat="low")
    trending_high = metric(text, "streamrec_variant_quality", variant="trending", figure="hr10", stat="high")
    assert hybrid_low > trending_high, (hybrid_low, trending_high)
    to_hybrid = metric(text, "streamrec_interleaving_credits", variant="both", team="b")
    to_trending = metric(text, "streamrec_interleaving_credits", variant="both", team="a")
    p_value = metric(text, "streamrec_interleaving_preference", variant="both", stat="p_value")
    assert to_hybrid > to_trending and p_value < 0.01, (to_hybrid, to_trending, p_value)
    print(f"HR@10 hybrid low {hybrid_low:.3f} > trending high {trending_high:.3f}; interleaved credits "
          f"hybrid {to_hybrid:.0f} vs trending {to_trending:.0f}, p {p_value:.2g}")

    # the answer on request names the user's variant
    user = next(m["user_id"] for m in msgs if m["variant"] == "trending")
    status, body = w.get(f"/users/{user}/recommendations?fresh=true&n=5", AUTH)
    assert status == 200 and orjson.loads(body)["variant"] == "trending"

    # /api/stats and the page in a real browser
    s = stats(w, "cluster")
    rows = {r["variant"]: r for r in s["experiment"]["variants"]}
    assert rows["both"]["interleaving"]["winner"] == "b" and rows["both"]["interleave"] == ["trending", "hybrid"]
    assert s["cluster"]["experiment"]["name"] == "planted"
    dump = chromium("--virtual-time-budget=5000", "--window-size=1400,1400", f"--user-data-dir={tmp_path / 'chrome'}",
                    "--dump-dom", f"{w.url}/dashboard?token={TOKEN}")
    dom = dump.stdout.decode("utf-8", "replace")
    assert 'data-state="live"' in dom, (dump.stderr.decode()[-2000:], dom[:2000])
    assert attr(dom, "experiment", "data-rows") == "3"
    assert attr(dom, "experiment-card", "data-winner") == "hybrid"
    assert 'data-winner="hybrid"' in dom and "hybrid is preferred" in dom
    hr = {v: float(attr(dom.replace(f'data-variant="{v}"', f'id="row-{v}"'), f"row-{v}", "data-hr"))
          for v in ("hybrid", "trending")}
    assert hr["hybrid"] > hr["trending"], hr
    assert w.get("/api/stats", AUTH)[0] == 200
