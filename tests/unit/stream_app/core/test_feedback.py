"""Impressions, dislikes and hides through the real pipeline: what they change in a user's lists,
in the state, and in what the models learn."""

from __future__ import annotations

import time

from schemas import Event
from stream_app.core.on_request import OnRequest
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.state import decode_state
from stream_app.core.store import DictTable


class Stream:
    """Drives a real pipeline as the scorer does: prepare (state), then score (learn and rank)."""

    def __init__(self, share: bool = False) -> None:
        self.pipeline = Pipeline(top_k=5, share_items=share)
        self.table = DictTable({})
        self.offset = 0
        self.pushed: dict[str, list[str]] = {}

    def send(self, user: str, item: str, typ: str = "click", shown: tuple[str, ...] | None = None) -> list[str]:
        ev = Event(f"e{self.offset}", user, item, typ, 1_700_000_000.0 + self.offset, shown_items=shown)
        batch = [Pending(ev, 0, self.offset, received=time.perf_counter())]
        self.offset += 1
        states, _ = self.pipeline.prepare(batch, lambda part, u: self.table.get(part, u.encode()))
        self.table.write(0, [(u.encode(), raw) for (_, u), raw in states.items()])
        (msg,) = self.pipeline.score(batch)
        self.pushed[user] = [i["item_id"] for i in msg["items"]]
        return self.pushed[user]

    def state(self, user: str):
        return decode_state(self.table.get(0, user.encode()))


def warmed(share: bool = False) -> Stream:
    s = Stream(share)
    for k in range(40):  # a popular head: a, b, c, d, e, f, g
        for item in "abcdefg"[: 1 + k % 7]:
            s.send(f"w{k}", item)
    return s


def test_a_hidden_item_leaves_the_users_lists_for_good():
    s = warmed()
    first = s.send("u", "a", "view")
    assert "b" in first
    counts = list(s.state("u").counts)
    after = s.send("u", "b", "hide")
    assert "b" not in after and s.state("u").hidden == ["b"] and s.state("u").counts == counts
    for item in "cdefg":  # later events, and lists on request, keep it out
        assert "b" not in s.send("u", item, "view")
        assert "b" not in [i["item_id"] for i in OnRequest(s.pipeline).for_user("u", s.state("u"), 5)["items"]]
    assert "b" in s.send("v", "a", "view")  # for this user only


def test_a_dislike_teaches_the_reranker_that_every_other_item_shown_was_preferred():
    s = warmed()
    shown = s.send("u", "a", "view")
    pairs, learned = s.pipeline.ranker.n_pairs, s.pipeline.ranker.version
    weights = s.pipeline.ranker.weights()
    s.send("u", shown[0], "dislike")
    assert s.pipeline.ranker.n_pairs == pairs + len(shown) - 1
    assert s.pipeline.ranker.version == learned + 1 and s.pipeline.ranker.weights() != weights
    assert shown[0] in s.state("u").hidden


def test_feedback_is_not_an_interaction():
    s = warmed(share=True)
    pop = s.pipeline.ranker.popularity.n_events
    live = s.pipeline.live.snapshot()
    s.send("u", "z", "impression", shown=("z", "a"))
    s.send("u", "a", "dislike")
    assert s.pipeline.ranker.popularity.n_events == pop  # nothing was chosen: no item gained
    assert s.pipeline.live.snapshot()["events"] == live["events"]  # nor judged
    out = s.pipeline.take_outgoing()
    assert out is None or not out.encode(0.0)  # nothing for the other workers either
    assert sum(s.state("u").counts) == 0 and s.state("u").last_ts is None


def test_an_impression_is_what_the_next_event_answers():
    s = warmed()
    s.send("u", "a", "view")
    shown = ("g", "f", "x")  # the client showed something else than the list pushed ("x": never seen)
    after = s.send("u", "g", "impression", shown=shown)
    assert "x" not in after  # a list is pushed after every event, impressions too
    assert s.pipeline.live.last_shown("u") == list(shown) and s.state("u").shown == list(shown)
    live = s.pipeline.live
    judged, hits = live.total.judged, live.total.hits
    s.send("u", "x", "click")  # third in what was shown: a hit on the impression, not on the pushed list
    assert (live.total.judged, live.total.hits) == (judged + 1, hits + 1)
