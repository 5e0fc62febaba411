"""The recommendation pipeline of one worker, free of Faust and Kafka so it is tested on its own.

The scorer hands it one micro-batch at a time: :meth:`Pipeline.prepare` applies the events to
the users' states in partition order (with :meth:`Pipeline.observe`, the cheap per-user
estimates that live in the state), then :meth:`Pipeline.score` learns and ranks: for each wave
(no user twice) the online models learn from the events, then one batched ranking call (one
forward pass of the deep model) produces every list.

Events whose offset the models have already learned from (a replay after a restart restored from
a checkpoint) are ranked again but not learned twice.

With ``share_items`` (several workers in a group, see :mod:`stream_app.core.sharing`) the
pipeline also hands out the items' side of each event (what popularity and co-occurrence learn
from it) as :meth:`Pipeline.take_outgoing`, for the shared topic, and learns the other workers'
events from that topic with :meth:`Pipeline.apply_shared`; every event's items' side is learned
once, by (partition, offset), whichever way it comes first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from models.base import EVENT_WEIGHTS, Interaction, Recommender, UserContext
from models.deep.candidates import select as select_deep
from models.engagement import PurchasePropensity, ReturnPredictor
from models.filters.rules import ListFilter
from models.hybrid import HybridRecommender
from models.retrieval.popularity import PopularityRecommender
from schemas import REJECTIONS, Event
from stream_app.core import logic, snapshot
from stream_app.core.live import LiveQuality
from stream_app.core.sharing import AppliedOffsets, OutgoingUpdates, Updates
from stream_app.core.state import UserState, apply_event, decode_state, encode_state, other_topic
from stream_app.core.variants import Lists, rank_lists

if TYPE_CHECKING:
    from stream_app.core.experiments import Experiment

log = logging.getLogger(__name__)

FEEDBACK_WEIGHTS: dict[str, float] = {**EVENT_WEIGHTS, "dislike": 1.0, "hide": 2.0}
"""The reranker's default weight per event type (``STREAMREC_EVENT_WEIGHTS`` changes them): how
strongly an interaction says the item was preferred to those skipped above it, and a dislike or a
hide that every other item shown was preferred to the rejected one."""


@dataclass(slots=True)
class Pending:
    """One valid event on its way from ingest to a recommendation.

    ``before`` and ``after`` (the user's context around the event) and the two estimates are
    filled in by :meth:`Pipeline.prepare`, or by the caller.
    """

    event: Event
    partition: int
    offset: int
    before: UserContext | None = None
    after: UserContext | None = None
    received: float = 0.0
    """``time.perf_counter()`` when the worker took the record."""
    purchase_probability: float | None = None
    return_probability: float | None = None
    handle: Any = None
    """Whatever the caller needs to acknowledge the record once its recommendation is out."""


@dataclass
class Pipeline:
    top_k: int = 10
    return_horizon_s: float = 7 * 86400.0
    popularity_half_life_s: float = 86400.0
    ranker: HybridRecommender = field(default=None)  # type: ignore[assignment]
    purchase: PurchasePropensity = field(default_factory=PurchasePropensity)
    returns: ReturnPredictor = field(default=None)  # type: ignore[assignment]
    live: LiveQuality = field(default_factory=LiveQuality)
    ranker_offsets: dict[int, int] = field(default_factory=dict)
    observe_offsets: dict[int, int] = field(default_factory=dict)
    latest_ts: float | None = None
    """The latest event time seen (the clock of the return horizon)."""
    deep_pool: int = 4096
    """Items the deep model retrieves from when serving (its most frequent; 0 = all)."""
    deep_history: int = 20
    """Latest items of a user the deep model encodes when serving."""
    round_max: int = 64
    """Most events of a batch learned and ranked in one step (:meth:`score_steps`; 0: a whole round)."""
    max_items: int = 0
    """Most items the online models hold (0: no bound); :meth:`upkeep` forgets the coldest past it."""
    filter: ListFilter = field(default_factory=ListFilter)
    """The item catalogue and the business rules every list passes (inactive while both are empty)."""
    share_items: bool = False
    """Publish the items' side of each event (:meth:`take_outgoing`) and learn the other workers' (:meth:`apply_shared`)."""
    item_offsets: AppliedOffsets = field(default_factory=AppliedOffsets)
    shared_positions: dict[int, int] = field(default_factory=dict)
    """Per partition of the shared topic, the next record to read (kept in checkpoints)."""
    suspect_replays: int = 0
    """Events taken for replays (their offset is not above the user's last applied one) although
    they are newer than everything applied to the user: the events topic was probably recreated or
    reset, and the users' states no longer change."""
    events_topic: int = 0
    """The ``events`` topic the offsets count in (:func:`~stream_app.core.state.topic_identity`;
    0 unknown); set by the worker at each assignment (:meth:`set_events_topic`)."""
    topic_changes: int = 0
    """How often the ``events`` topic turned out to be another one than the offsets counted in."""
    other_topic_states: int = 0
    """User states met whose offset counted in an earlier ``events`` topic (taken as new users' offsets)."""
    event_weights: dict[str, float] = field(default_factory=lambda: dict(FEEDBACK_WEIGHTS))
    """How much each event type teaches the reranker (a click, a purchase, a dislike ...)."""
    lists: Lists = field(default=None)  # type: ignore[assignment]
    """How each user's list is made: the filter, and the variants of an experiment (see :meth:`set_experiment`)."""
    _warned_at: float = field(default=-1e9, repr=False)
    _outgoing: OutgoingUpdates | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.ranker is None:
            self.ranker = HybridRecommender(popularity=PopularityRecommender(half_life=self.popularity_half_life_s))
        self.ranker.deep_pool = self.deep_pool
        self.ranker.deep_history = self.deep_history
        self.ranker.set_max_items(self.max_items)
        if self.returns is None:
            self.returns = ReturnPredictor(horizon=self.return_horizon_s)
        if self.lists is None:
            self.lists = Lists(self.filter)

    def set_experiment(self, experiment: Experiment | None) -> None:
        """Split users between ``experiment``'s variants from the next batch on (None: no experiment)."""
        self.lists.set_experiment(experiment)
        self.live.variant_of = None if experiment is None else self.lists.variant_of

    def set_events_topic(self, topic: int) -> bool:
        """The ``events`` topic now read is ``topic``; return True if it replaced another one.

        Offsets count within one topic. When the topic was deleted and created again (a new id)
        the models' learned offsets belong to the old one: they start over (else every event
        of the new topic would look learned already), and users' states do the same one by one
        as their events arrive (:func:`~stream_app.core.state.apply_event`). Said loudly: the
        old topic's events stay in what was learned, and a re-sent copy of them counts again.
        """
        if not topic or topic == self.events_topic:
            return False
        old, self.events_topic = self.events_topic, topic
        if not old:
            return False
        self.topic_changes += 1
        log.error("the events topic is not the one the stored offsets count in (topic identity %d, was %d): it "
                  "was deleted and created again. Offsets start over: the models learn its events from the "
                  "first, and each user's state takes its events as new (what the old topic taught stays). If "
                  "the old events were copied into the new topic they count twice: to start from nothing, use "
                  "a new STREAMREC_APP_ID and data folder", topic, old)
        self.ranker_offsets.clear()
        self.observe_offsets.clear()
        self.item_offsets = AppliedOffsets()
        return True

    def take_unlearned(self, starts: dict[int, int]) -> dict[int, int]:
        """Per partition, the events below ``starts`` (the committed offsets) the online models never
        learned: the models were checkpointed at a lower offset, and the worker stopped without a
        later checkpoint (a kill -9). They are not replayed (their offsets are committed), so
        their learning is lost; users' states are not (they are written before each commit).
        Only partitions the models learned before count (one that moved here from another
        worker was never this worker's to learn). The learned offsets then move up to the
        starts, so a loss is counted once.

        >>> p = Pipeline(ranker_offsets={0: 99, 1: 40})
        >>> p.take_unlearned({0: 130, 1: 41, 2: 500}), p.take_unlearned({0: 130}), p.ranker_offsets
        ({0: 30}, {}, {0: 129, 1: 40})
        """
        out = {}
        for partition, start in starts.items():
            learned = self.ranker_offsets.get(partition)
            if learned is not None and start > learned + 1:
                out[partition] = start - learned - 1
                self.ranker_offsets[partition] = start - 1
        return out

    # -- per event, in the ingest agent -------------------------------------------------------
    def expire_returns(self, max_items: int = 1000) -> int:
        """Label users whose return horizon has passed (event time), a bounded number per call."""
        if self.latest_ts is None:
            return 0
        return self.returns.expire(self.latest_ts, max_items)

    def observe(self, before: UserContext, event: Event, partition: int, offset: int) -> tuple[float, float]:
        """Learn the per-user estimates from one event; return (purchase, return) probabilities."""
        if event.is_feedback:  # not an interaction: the user's estimates stay as they are
            return self.purchase.predict_one(before), self.returns.predict_one(before)
        if self.latest_ts is None or event.ts > self.latest_ts:
            self.latest_ts = event.ts
        inter = logic.to_interaction(event)
        if offset > self.observe_offsets.get(partition, -1):
            self.purchase.learn_one(before, inter)
            self.returns.learn_one(before, inter)
            self.observe_offsets[partition] = offset
        after = before.after(inter)
        return self.purchase.predict_one(after), self.returns.predict_one(after)

    # -- per micro-batch, in the scorer ---------------------------------------------------------
    def _suspect_replay(self, p: Pending, st: UserState) -> None:
        self.suspect_replays += 1
        now = time.monotonic()
        if now - self._warned_at >= 10.0:  # loud, but not a line per event
            self._warned_at = now
            log.error("partition=%d offset=%d user=%r: the user's state already has offset %d, yet this event "
                      "(ts %.3f) is newer than the last one applied (ts %.3f); it is not applied. Was the events "
                      "topic recreated or its offsets reset? Then the stored states (STREAMREC_DATA_DIR and the "
                      "changelog of STREAMREC_APP_ID) belong to the old topic: start with a new STREAMREC_APP_ID",
                      p.partition, p.offset, p.event.user_id, st.offset, p.event.ts, st.last_ts)

    def prepare(
        self,
        batch: list[Pending],
        read: Callable[[int, str], bytes | None],
        recent_max: int = 50,
        purchased_max: int = 200,
    ) -> tuple[dict[tuple[int, str], bytes], int]:
        """Apply a micro-batch to the users' states, in order; fill in each event's contexts.

        ``read(partition, user_id)`` returns a user's stored state (None for a new user). Returns
        ``(states, duplicates)``: the encoded new state of every user the batch touched, a user's
        updates coalesced into one, and the number of events already applied before (replays).
        A user whose events were all replays is in ``states`` too: writing the state again
        repairs a changelog that missed it when the worker died between the store and the send.
        """
        current: dict[tuple[int, str], UserState] = {}
        duplicates = 0
        topic = self.events_topic
        last_shown = self.live.last_shown
        for p in batch:
            ev = p.event
            user = ev.user_id
            k = (p.partition, user)
            st = current.get(k)
            if st is None:
                st = decode_state(read(p.partition, user))
            before = logic.to_context(user, st)
            purchase_p, return_p = self.observe(before, ev, p.partition, p.offset)
            if other_topic(st, topic):
                self.other_topic_states += 1
            new, applied = apply_event(st, ev, p.offset, recent_max, purchased_max, topic)
            if applied and ev.type != "impression":  # an impression says itself what was shown
                new.shown = last_shown(user)
                new.purchase_probability = purchase_p
                new.return_probability = return_p
            else:
                duplicates += 1
                if st.last_ts is not None and ev.ts > st.last_ts:
                    self._suspect_replay(p, st)
            current[k] = new
            p.before = before
            p.after = logic.to_context(user, new)
            p.purchase_probability = purchase_p
            p.return_probability = return_p
        return {k: encode_state(st) for k, st in current.items()}, duplicates

    def score(self, batch: list[Pending]) -> list[dict[str, Any]]:
        """Learn from and rank a micro-batch; one recommendation message per event, in order
        (:meth:`score_steps` run to its end)."""
        return logic.finish(self.score_steps(batch))

    def score_steps(self, batch: list[Pending]) -> Generator[None, None, list[dict[str, Any]]]:
        """:meth:`score` in steps of bounded work: a generator that yields after the batch's deep
        pass and after each piece of at most ``round_max`` events, and returns the messages. A
        worker gives its event loop a turn between steps (a batch of 256 takes 100 ms and more).

        The batch is split into rounds (see :func:`stream_app.core.logic.split_rounds`): round ``r``
        holds every user's ``r``-th event of the batch, so a user's events are learned and ranked
        in order, each seeing the list its predecessor produced, while every round is ranked in
        one batched call.  Whether an event is learned is decided in arrival order (offsets only
        grow through a partition), so reordering never skips one. The learned offsets advance only
        once the whole batch is learned and ranked: a batch that fails half-way (its events are then
        retried one by one) is learned again rather than skipped.
        """
        out: list[dict[str, Any] | None] = [None] * len(batch)
        advanced = dict(self.ranker_offsets)
        fresh: list[bool] = []
        for p in batch:
            last = advanced.get(p.partition, -1)
            fresh.append(p.offset > last)
            if p.offset > last:
                advanced[p.partition] = p.offset
        # shared: the items' side of an event is learned once, here or from the topic, whichever
        # comes first; decided in arrival order too (the rounds reorder a partition's events)
        item_seen = AppliedOffsets(self.item_offsets.offsets) if self.share_items else None
        new_items = [item_seen.accept(p.partition, p.offset) for p in batch] if item_seen is not None else None
        ranker = self.ranker
        live = self.live
        exclusions = logic.exclusions
        afters: list[UserContext] = []
        all_excludes: list[frozenset[str]] = []
        outgoing = OutgoingUpdates(ranker.item_window) if self.share_items else None
        for p in batch:
            after = p.after
            assert after is not None, "Pipeline.prepare (or the caller) fills in each event's contexts"
            afters.append(after)
            # after an impression nothing was touched; a rejected item is in ``after.hidden``
            all_excludes.append(exclusions(after, None if p.event.type == "impression" else p.event))
            if outgoing is not None and not p.event.is_feedback:
                # every event, replays too: the shared topic's readers apply each offset once
                assert p.before is not None
                outgoing.add(p.partition, p.offset, p.event, p.before.recent_items)
        self._outgoing = outgoing
        # the deep model does not learn online: one forward pass serves the whole batch
        deep_lists = ranker.deep_candidates(afters, all_excludes)
        yield None
        for rnd in logic.split_rounds(batch, key=lambda p: p.event.user_id, most=self.round_max):
            wave = [batch[i] for i in rnd]
            self._learn_round(wave, [fresh[i] for i in rnd], None if new_items is None else [new_items[i] for i in rnd])
            users = [afters[i] for i in rnd]
            now = time.time()
            made = rank_lists(self.lists, ranker, users, [all_excludes[i] for i in rnd], self.top_k, now,
                              self.lists.assign([u.user_id for u in users]), [p.event.event_id for p in wave],
                              None if deep_lists is None else select_deep(deep_lists, rnd))
            version = self.model_version()
            done = time.perf_counter()
            for i, p, m in zip(rnd, wave, made):
                ev = p.event
                shown = ev.shown_items if ev.type == "impression" else None
                # a client's impression is what the user saw: it, not the list pushed after it,
                # is what the user's next event answers
                if shown:
                    live.shown(ev.user_id, list(shown), ev.ts, keep_teams=True)
                else:
                    live.shown(ev.user_id, [item for item, _, _ in m.items], ev.ts, m.teams)
                out[i] = logic.recommendation_message(
                    p.event, m.items, version, now, (done - p.received) * 1000.0,
                    p.purchase_probability, p.return_probability, variant=m.variant,
                )
            yield None
        self.ranker_offsets.update(advanced)
        if item_seen is not None:
            self.item_offsets = item_seen
        # split_rounds puts every position of the batch in exactly one round: no slot is left None
        return cast("list[dict[str, Any]]", out)

    def _learn_round(self, wave: list[Pending], fresh: list[bool], new_items: list[bool] | None) -> None:
        """Judge the lists the wave's events answer, and learn from the events not learned yet.

        ``new_items`` (with sharing) says which events' items' side is not learned yet.
        """
        live, ranker, to_interaction = self.live, self.ranker, logic.to_interaction
        share = new_items is not None
        weights = self.event_weights
        for i, (p, learn) in enumerate(zip(wave, fresh)):
            before = p.before
            ev = p.event
            assert before is not None, "Pipeline.prepare (or the caller) fills in each event's contexts"
            if ev.is_feedback:
                if learn and ev.type in REJECTIONS:  # every other item shown is preferred to this one
                    shown = live.last_shown(ev.user_id)
                    ranker.learn_rejection(replace(before, shown=tuple(shown)) if shown else before, ev.item_id,
                                           weights.get(ev.type, 1.0))
                continue  # an impression only says what was shown (score() keeps it)
            live.observe(before, ev)
            inter = to_interaction(ev)
            if learn:
                # the impression this event answers is the list pushed after the user's previous
                # event (this batch's earlier round, or an earlier batch), not the one the stored
                # state holds (which answered the event before): learn from the list shown
                shown = live.last_shown(ev.user_id)
                labelled = replace(before, shown=tuple(shown)) if shown else before
                ranker.learn_feedback(labelled, inter, weights.get(ev.type))
                if not share:  # else the items' side is learned once per offset, below
                    ranker.learn_items(labelled, inter)
            # shared: the items' side once per offset, whether it came first from here or the topic
            if new_items is not None and new_items[i]:
                ranker.learn_items(before, inter)

    # -- shared item knowledge ----------------------------------------------------------------
    def take_outgoing(self) -> OutgoingUpdates | None:
        """What the last :meth:`score` call has for the shared topic (None without sharing)."""
        out, self._outgoing = self._outgoing, None
        return out

    def apply_shared(self, up: Updates) -> int:
        """Learn the items' side of the events in ``up`` not learned yet; returns how many were."""
        learn = self.ranker.learn_items
        entries = self.item_offsets.take(up)
        for e in entries:
            learn(UserContext("", e.recent), Interaction("", e.item_id, e.type, e.ts))
        return len(entries)

    # -- a bounded item catalogue ------------------------------------------------------------
    def upkeep_due(self) -> bool:
        """Whether the online models hold more items than :attr:`max_items` allows, or are making room."""
        cap = self.ranker.capacity
        return cap is not None and cap.pending(self.ranker.index)

    def upkeep(self) -> bool:
        """One bounded step of making room (see :mod:`models.rerank.capacity`); True while more remains."""
        return self.ranker.upkeep()

    def prepare_deep(self, model: Recommender) -> Recommender:
        """Build the serving retriever of a newly loaded deep model (call it off the event loop)."""
        return self.ranker.serving_retriever(model)

    def install_deep(self, model: Recommender | None, retriever: Recommender | None = None) -> None:
        """Put a deep model in service: reference assignments only, between batches."""
        self.ranker.set_deep(model, retriever)

    def model_version(self) -> dict[str, Any]:
        return {"deep": self.ranker.deep_version, "online": int(self.ranker.version or 0)}

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint_offsets(self) -> dict[str, Any]:
        """Copies of the offsets a checkpoint records (cheap; take them on the event loop)."""
        return snapshot.offsets_of(self)

    def checkpoint(self, offsets: dict[str, Any] | None = None) -> bytes:
        """A consistent snapshot of the online models and the offsets they have learned."""
        return logic.finish(self.checkpoint_steps(offsets))

    def checkpoint_steps(self, offsets: dict[str, Any] | None = None) -> Generator[None, None, bytes]:
        """:meth:`checkpoint` in steps of bounded work: a generator that yields between steps and
        returns the bytes. Encoding every model takes hundreds of milliseconds at 100k items; a
        worker gives its event loop a turn between steps while nothing changes the models, with
        ``offsets`` (:meth:`checkpoint_offsets`) taken when it started.
        """
        return snapshot.encode_steps(self, self.checkpoint_offsets() if offsets is None else offsets)

    def restore(self, data: bytes) -> None:
        """Put the models and offsets of a checkpoint in place (the deep model in service stays)."""
        snapshot.restore_into(self, data)
