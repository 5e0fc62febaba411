"""Prometheus metrics of a worker (served at ``GET /metrics``); names are documented in README.md."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter("streamrec_events_total", "Events consumed, by outcome", ["outcome"], registry=REGISTRY)
DLQ = Counter("streamrec_dlq_total", "Records sent to events-dlq, by reason", ["reason"], registry=REGISTRY)
DUPLICATES = Counter(
    "streamrec_duplicate_events_total", "Events already applied to state (replays after a restart)", registry=REGISTRY
)
COMMITS_HELD_BACK = Counter(
    "streamrec_commits_held_back_total",
    "Offset commits held back because they would have passed unprocessed events, by reason",
    ["reason"], registry=REGISTRY,
)
GAP_RECORDS = Counter(
    "streamrec_gap_records_total",
    "Records the consumer skipped after a rebalance, read back from the broker and processed in order",
    registry=REGISTRY,
)
RECOMMENDATIONS = Counter("streamrec_recommendations_total", "Recommendation messages sent", registry=REGISTRY)
LATENCY = Histogram(
    "streamrec_latency_seconds",
    "Time from an event entering the worker to its recommendation being sent",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "streamrec_batch_size", "Events scored per micro-batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=REGISTRY,
)
SCORING = Histogram(
    "streamrec_scoring_seconds", "Time to learn from and rank one micro-batch",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25), registry=REGISTRY,
)
QUEUE = Gauge("streamrec_scoring_queue", "Events waiting to be scored", registry=REGISTRY)
LAG = Gauge("streamrec_consumer_lag", "Records behind the end of each events partition", ["partition"], registry=REGISTRY)
SWAPS = Counter("streamrec_model_swaps_total", "Deep model swaps, by result", ["result"], registry=REGISTRY)
MODEL_INFO = Gauge("streamrec_model_info", "Deep model version serving (value 1)", ["version"], registry=REGISTRY)
ONLINE_LEARNED = Gauge("streamrec_online_events_learned", "Events the online model has learned from", registry=REGISTRY)
LIVE_HR = Gauge("streamrec_live_hr10", "Prequential HR@10 of shown lists", registry=REGISTRY)
LIVE_NDCG = Gauge("streamrec_live_ndcg10", "Prequential NDCG@10 of shown lists", registry=REGISTRY)
LIVE_CTR = Gauge("streamrec_live_ctr", "Share of next clicks that were on a recommended item", registry=REGISTRY)
LIVE_CONVERSION = Gauge(
    "streamrec_live_conversion", "Share of purchases that were of a recommended item", registry=REGISTRY
)
RETURNING = Gauge("streamrec_returning_user_rate", "Share of events from users seen before", registry=REGISTRY)
CHECKPOINTS = Counter("streamrec_checkpoints_total", "Online model checkpoints written", registry=REGISTRY)
