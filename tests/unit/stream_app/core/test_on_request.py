"""Lists on request, through the real pipeline: same ranker and exclusions as pushed lists, and
no trace in what the online models learn from."""

from __future__ import annotations

import time

from schemas import Event
from stream_app.core.logic import RecommendationIds, recommendation_message
from stream_app.core.on_request import ANONYMOUS, OnRequest
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.state import decode_state
from stream_app.core.store import DictTable


class Stream:
    """Drives a real pipeline as the scorer does: prepare (state), then score (learn and rank)."""

    def __init__(self, top_k: int = 5) -> None:
        self.pipeline = Pipeline(top_k=top_k)
        self.table = DictTable({})
        self.offset = 0
        self.pushed: dict[str, dict] = {}

    def send(self, events: list[tuple[str, str, str]]) -> list[dict]:
        batch = []
        for user, item, typ in events:
            ev = Event(f"e{self.offset}", user, item, typ, 1_700_000_000.0 + self.offset)
            batch.append(Pending(ev, 0, self.offset, received=time.perf_counter()))
            self.offset += 1
        states, _ = self.pipeline.prepare(batch, lambda part, user: self.table.get(part, user.encode()))
        self.table.write(0, [(user.encode(), raw) for (_, user), raw in states.items()])
        messages = self.pipeline.score(batch)
        for m in messages:
            self.pushed[m["user_id"]] = m
        return messages

    def state(self, user: str):
        raw = self.table.get(0, user.encode())
        return None if raw is None else decode_state(raw)


def warmed() -> Stream:
    s = Stream()
    for k in range(30):  # a popular head and some sequences: a -> b -> c
        s.send([(f"w{k}", "a", "click"), (f"x{k}", f"p{k % 7}", "view")])
        s.send([(f"w{k}", "b", "click")])
        s.send([(f"w{k}", "c", "view")])  # a -> b weighs 1, a -> c 0.7
    return s


def items_of(doc: dict) -> list[str]:
    return [i["item_id"] for i in doc["items"]]


def test_with_no_model_change_the_fresh_list_is_the_pushed_list():
    s = warmed()
    s.send([("u", "a", "click"), ("u", "b", "purchase")])
    pushed = s.pushed["u"]
    fresh = OnRequest(s.pipeline).for_user("u", s.state("u"), n=5)
    assert items_of(fresh) == items_of(pushed)
    assert [i["score"] for i in fresh["items"]] == [i["score"] for i in pushed["items"]]
    assert fresh["model_version"] == pushed["model_version"]
    assert fresh["events_applied"] == 2 and fresh["user_id"] == "u"


def test_the_fresh_list_follows_what_others_taught_the_models_since():
    s = warmed()
    s.send([("u", "q", "click")])  # an item nobody followed yet: the pushed list is popularity
    pushed = items_of(s.pushed["u"])
    assert "z" not in pushed
    for k in range(20):  # other users now go q -> z
        s.send([(f"o{k}", "q", "click")])
        s.send([(f"o{k}", "z", "purchase")])
    fresh = OnRequest(s.pipeline).for_user("u", s.state("u"), n=5)
    assert items_of(fresh)[0] == "z", fresh
    assert items_of(s.pushed["u"]) == pushed  # nothing was pushed to u meanwhile


def test_exclusions_are_the_pushed_ones_plus_the_callers():
    s = warmed()
    s.send([("u", "c", "purchase"), ("u", "a", "click")])
    r = OnRequest(s.pipeline)
    first = items_of(r.for_user("u", s.state("u"), n=20))
    assert "c" not in first and "a" not in first  # purchased, and the item just touched
    assert first, "a warmed pipeline has candidates"
    again = items_of(r.for_user("u", s.state("u"), n=20, exclude={first[0], first[1]}))
    assert first[0] not in again and first[1] not in again
    assert len(r.for_user("u", s.state("u"), n=3)["items"]) == 3


def test_a_user_without_state_gets_a_cold_list():
    s = warmed()
    doc = OnRequest(s.pipeline).for_user("new", None, n=4)
    assert doc["events_applied"] == 0 and len(doc["items"]) == 4
    assert {i["source"] for i in doc["items"]} == {"popularity"}


def test_a_list_on_request_is_not_the_users_impression():
    s = warmed()
    s.send([("u", "a", "click")])
    ranker, live = s.pipeline.ranker, s.pipeline.live
    memory_before = ranker.memory["u"]
    shown_before = list(live.last_shown("u"))
    r = OnRequest(s.pipeline)
    r.for_user("u", s.state("u"), n=5, exclude={"b"})
    r.for_session(["a", "b"], n=5)
    r.similar("a", n=5)
    assert ranker.memory["u"] is memory_before
    assert list(live.last_shown("u")) == shown_before
    assert ANONYMOUS not in ranker.memory
    # and the user's next event is learned from the pushed list, as without the requests
    learned = ranker.n_learned
    s.send([("u", "b", "click")])
    assert ranker.n_learned == learned + 1


def test_a_full_impression_memory_loses_no_user_to_a_request():
    s = warmed()
    ranker = s.pipeline.ranker
    ranker.params["memory_users"] = len(ranker.memory)
    users = list(ranker.memory)
    OnRequest(s.pipeline).for_session(["a"], n=5)
    assert list(ranker.memory) == users


def test_an_anonymous_session_ranks_from_its_items():
    s = warmed()
    r = OnRequest(s.pipeline)
    doc = r.for_session(["a"], n=3)
    assert items_of(doc)[0] == "b" and doc["items"][0]["source"] == "cooccurrence"
    assert "a" not in items_of(doc) and doc["session_items"] == 1
    assert "b" not in items_of(r.for_session(["a"], n=3, exclude={"b"}))
    cold = r.for_session([], n=3)
    assert len(cold["items"]) == 3 and {i["source"] for i in cold["items"]} == {"popularity"}
    unknown = r.for_session(["never-seen"], n=3)
    assert len(unknown["items"]) == 3


def test_similar_items_are_the_neighbours_then_popular_ones():
    s = warmed()
    r = OnRequest(s.pipeline)
    doc = r.similar("a", n=6)
    got = items_of(doc)
    assert got[:2] == ["b", "c"] and "a" not in got and len(got) == 6
    assert [i["source"] for i in doc["items"][:2]] == ["cooccurrence", "cooccurrence"]
    assert doc["items"][-1]["source"] == "popularity" and doc["known"] is True
    scores = [i["score"] for i in doc["items"]]
    assert scores == sorted(scores, reverse=True)
    nobody = r.similar("never-seen", n=3)
    assert nobody["known"] is False and {i["source"] for i in nobody["items"]} == {"popularity"}


def test_every_answer_and_every_pushed_message_has_its_own_id():
    s = warmed()
    pushed = s.send([("u", "a", "click"), ("v", "b", "click")])
    r = OnRequest(s.pipeline)
    answers = [r.for_user("u", s.state("u"), 3), r.for_session(["a"], 3), r.similar("a", 3)]
    ids = [m["recommendation_id"] for m in pushed + answers]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids)


def test_the_pushed_message_keeps_its_fields_and_takes_a_given_id():
    ev = Event("e-1", "u", "i", "click", 1.0)
    msg = recommendation_message(ev, [("x", 0.5, "deep")], {"deep": None, "online": 0}, 2.0, 1.5,
                                 recommendation_id="r-1")
    assert msg["recommendation_id"] == "r-1"
    assert set(msg) == {"recommendation_id", "user_id", "event_id", "items", "model_version", "generated_at",
                        "latency_ms", "purchase_probability", "return_probability"}
    ids = RecommendationIds()
    assert len({ids() for _ in range(1000)}) == 1000


def test_a_category_keeps_only_its_items_from_every_endpoint():
    from schemas.items import Item

    s = warmed()
    cat = s.pipeline.filter.catalogue
    cat.update(Item("c", category="shoes"))
    for k in (1, 3, 5):
        cat.update(Item(f"p{k}", category="shoes"))
    cat.update(Item("b", category="hats"))
    r = OnRequest(s.pipeline)
    for ans in (r.for_user("w1", s.state("w1"), 5, category="shoes"),
                r.for_session(["a"], 5, category="shoes"), r.similar("a", 5, category="shoes")):
        got = [i["item_id"] for i in ans["items"]]
        assert got and all(cat.category(i) == "shoes" for i in got), got
    assert "b" in [i["item_id"] for i in r.for_session(["a"], 5)["items"]]  # hats are not gone for good
    assert r.for_session(["a"], 5, category="nothing-here")["items"] == []


def test_explain_gives_each_items_sources_and_contributions_that_add_up_to_its_score():
    s = warmed()
    r = OnRequest(s.pipeline)
    ans = r.for_session(["a"], 5, explain=True)
    assert ans["items"]
    for item in ans["items"]:
        why = item["explain"]
        assert item["source"] in why["sources"]
        assert abs(sum(why["contributions"].values()) - item["score"]) < 1e-4, item
    assert "explain" not in r.for_session(["a"], 5)["items"][0]
    assert all(i["explain"]["sources"] == [i["source"]] for i in r.similar("a", 3, explain=True)["items"])
    # explaining leaves no trace in the impression memory
    assert ANONYMOUS not in s.pipeline.ranker.memory
