"""Prometheus metrics of one worker (served at ``GET /metrics``); names are documented in README.md.

Each worker owns a :class:`WorkerMetrics` with a registry of its own, so two workers built in one
process never count into each other.

>>> m = WorkerMetrics()
>>> m.events.labels("valid").inc()
>>> m.value("streamrec_events_total", outcome="valid")
1.0
>>> WorkerMetrics().value("streamrec_events_total", outcome="valid")
0.0
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SCORING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class WorkerMetrics:
    """Every counter, gauge and histogram a worker exports, registered in ``self.registry``."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("streamrec_events_total", "Events consumed, by outcome", ["outcome"], registry=r)
        self.dlq = Counter("streamrec_dlq_total", "Records sent to events-dlq, by reason", ["reason"], registry=r)
        self.duplicates = Counter(
            "streamrec_duplicate_events_total", "Events already applied to state (replays after a restart)",
            registry=r,
        )
        self.suspect_replays = Counter(
            "streamrec_suspect_replays_total",
            "Events at an offset the user's state has passed yet newer than all it holds (topic recreated or reset?)",
            registry=r,
        )
        self.unlearned = Counter(
            "streamrec_unlearned_events_total",
            "Committed events of this worker's partitions its online models never learned (a kill between "
            "checkpoints, or another worker processed the partition meanwhile)",
            registry=r,
        )
        self.topic_changes = Counter(
            "streamrec_events_topic_changes_total",
            "Times the events topic turned out to be another topic than the stored offsets count in (recreated)",
            registry=r,
        )
        self.other_topic_states = Counter(
            "streamrec_other_topic_states_total",
            "User states whose offset counted in an earlier events topic, taken as new (the topic was recreated)",
            registry=r,
        )
        self.commits_held_back = Counter(
            "streamrec_commits_held_back_total",
            "Offset commits held back because they would have passed unprocessed events, by reason",
            ["reason"], registry=r,
        )
        self.gap_records = Counter(
            "streamrec_gap_records_total",
            "Records the consumer skipped after a rebalance, read back from the broker and processed in order",
            registry=r,
        )
        self.recommendations = Counter("streamrec_recommendations_total", "Recommendation messages sent", registry=r)
        self.latency = Histogram(
            "streamrec_latency_seconds", "Time from an event entering the worker to its recommendation being sent",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "streamrec_batch_size", "Events scored per micro-batch", buckets=BATCH_BUCKETS, registry=r,
        )
        self.scoring = Histogram(
            "streamrec_scoring_seconds", "Time to learn from and rank one micro-batch",
            buckets=SCORING_BUCKETS, registry=r,
        )
        self.queue = Gauge("streamrec_scoring_queue", "Events waiting to be scored", registry=r)
        self.lag = Gauge(
            "streamrec_consumer_lag", "Records behind the end of each events partition", ["partition"], registry=r,
        )
        self.swaps = Counter("streamrec_model_swaps_total", "Deep model swaps, by result", ["result"], registry=r)
        self.model_info = Gauge("streamrec_model_info", "Deep model version serving (value 1)", ["version"], registry=r)
        self.online_learned = Gauge(
            "streamrec_online_events_learned", "Events the online model has learned from", registry=r,
        )
        self.live_hr = Gauge("streamrec_live_hr10", "Prequential HR@10 of shown lists", registry=r)
        self.live_ndcg = Gauge("streamrec_live_ndcg10", "Prequential NDCG@10 of shown lists", registry=r)
        self.live_ctr = Gauge(
            "streamrec_live_ctr", "Share of clicks on an item pushed to the user within the attribution window", registry=r,
        )
        self.live_conversion = Gauge(
            "streamrec_live_conversion", "Share of purchases of an item pushed to the user within the attribution window", registry=r,
        )
        self.variant_quality = Gauge(
            "streamrec_variant_quality",
            "Live figure of one experiment variant's lists (figure: hr10, ndcg10, ctr, conversion) with its 95% "
            "interval (stat: value, low, high)", ["variant", "figure", "stat"], registry=r,
        )
        self.variant_judged = Gauge(
            "streamrec_variant_lists_judged", "Lists of one experiment variant judged by the user's next event",
            ["variant"], registry=r,
        )
        self.interleaving = Gauge(
            "streamrec_interleaving_credits",
            "Interactions with an interleaved list, by the team credited (a, b: the two variants; tie: neither)",
            ["variant", "team"], registry=r,
        )
        self.interleaving_preference = Gauge(
            "streamrec_interleaving_preference",
            "Share of an interleaved variant's credited interactions that went to its second variant (stat: value, "
            "low, high of the 95% interval; p_value of the sign test)", ["variant", "stat"], registry=r,
        )
        self.returning = Gauge("streamrec_returning_user_rate", "Share of events from users seen before", registry=r)
        self.checkpoints = Counter("streamrec_checkpoints_total", "Online model checkpoints written", registry=r)
        self.shared_bytes = Counter(
            "streamrec_shared_bytes_total", "Bytes of shared item knowledge published (out) and read (in)",
            ["direction"], registry=r,
        )
        self.shared_entries = Counter(
            "streamrec_shared_entries_total",
            "Events read from the shared topic, by outcome (applied, or duplicate: learned before)",
            ["outcome"], registry=r,
        )
        self.shared_bad = Counter(
            "streamrec_shared_bad_records_total", "Records of the shared topic refused as malformed", registry=r,
        )
        self.shared_lag = Histogram(
            "streamrec_shared_lag_seconds",
            "Time from a worker publishing item knowledge to this worker learning it",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.catalogue_items = Gauge("streamrec_catalogue_items", "Items the item catalogue knows", registry=r)
        self.catalogue_updates = Counter(
            "streamrec_catalogue_updates_total", "Records of the items topic read, by outcome (updated, removed, invalid)",
            ["outcome"], registry=r,
        )
        self.catalogue_lag = Histogram(
            "streamrec_catalogue_lag_seconds", "Time from an item record being written to this worker applying it",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.filtered = Gauge(
            "streamrec_filtered_candidates", "Candidates dropped by the catalogue and the rules so far", registry=r,
        )
        self.items_held = Gauge("streamrec_items_held", "Items the online models hold now", registry=r)
        self.items_forgotten = Counter(
            "streamrec_items_forgotten_total",
            "Items the online models forgot to stay within STREAMREC_MAX_ITEMS (the coldest first)", registry=r,
        )
        self.loop_lag = Histogram(
            "streamrec_event_loop_lag_seconds", "How late the worker's event loop ran a timer (blocked loop)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=r,
        )
        self.loop_lag_max = Gauge(
            "streamrec_event_loop_lag_max_seconds", "The latest a timer of the event loop ran in the last 10 to 20 seconds",
            registry=r,
        )
        self.loop_held_max = Gauge(
            "streamrec_event_loop_held_max_seconds",
            "Of the event loop's lag in the last 10 to 20 seconds, the most not spent waiting for a CPU: "
            "what the worker's own work held the loop (Linux; the lag itself elsewhere)", registry=r,
        )
        self.item_events = Gauge(
            "streamrec_item_events_learned",
            "Events the item-side models (popularity, co-occurrence) have learned, from every worker when shared",
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        """The current value of one sample (0.0 when it has not been recorded yet)."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def by_label(self, counter: Counter, label: str) -> dict[str, int]:
        """Current values of a labelled counter, e.g. ``{"schema": 3}``."""
        out: dict[str, int] = {}
        for metric in counter.collect():
            for s in metric.samples:
                if s.name.endswith("_total"):
                    out[s.labels[label]] = int(s.value)
        return out
