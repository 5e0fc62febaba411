"""The composition root: :func:`build_worker` makes one worker from a settings object.

Everything a worker is made of is built here and handed to the parts that use it: the Faust
app, its topics and table, the pipeline, the state store, the scorer, the model watcher, the
ingest agent, the background tasks and the web views. Nothing is read from files, settings or
the network at import or while building: the online checkpoint is restored by
:meth:`Worker.restore` when the worker starts, and Kafka is reached only once the app runs.
Two workers built in one process share nothing.

>>> from stream_app.settings import Settings
>>> w = build_worker(Settings(app_id="doc-shop", top_k=5))
>>> w.pipeline.top_k, w.topics.events_name, w.user_state.changelog_topic.get_topic_name()
(5, 'events', 'doc-shop-user_state-changelog')
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import faust

from models.filters.rules import ListFilter, Rules
from stream_app.core.delivery import Confirmer, Output
from stream_app.core.experiments import Experiment
from stream_app.core.live import LiveQuality
from stream_app.core.metrics import WorkerMetrics
from stream_app.core.pipeline import FEEDBACK_WEIGHTS, Pipeline
from stream_app.core.scorer import Scorer
from stream_app.core.store import UserStateStore
from stream_app.settings import Settings
from stream_app.web.dashboard import Dashboard, register_dashboard
from stream_app.web.probes import register_probes
from stream_app.web.recommend import register_request_views
from stream_app.web.users import register_user_views
from stream_app.worker.agents import Ingest
from stream_app.worker.app import create_app
from stream_app.worker.catalogue import CatalogueReader
from stream_app.worker.checkpoints import CheckpointStore
from stream_app.worker.outbox import Outbox, ProducerOutbox
from stream_app.worker.shared import SharedReader
from stream_app.worker.state_backend import FaustRocksTable
from stream_app.worker.swap import ModelWatcher
from stream_app.worker.tables import declare_user_state
from stream_app.worker.tasks import register_tasks
from stream_app.worker.topics import Topics, declare_topics


@dataclass(eq=False)
class Worker:
    """One stream worker: its settings and every part built from them."""

    settings: Settings
    app: faust.App
    metrics: WorkerMetrics
    topics: Topics
    user_state: Any
    pipeline: Pipeline
    checkpoints: CheckpointStore
    outbox: Outbox
    store: UserStateStore
    scorer: Scorer
    watcher: ModelWatcher
    ingest: Ingest
    confirmer: Confirmer | None = None
    ingest_agent: Any = None
    dashboard: Dashboard | None = field(default=None, repr=False)
    catalogue: CatalogueReader | None = None
    """The reader of the item catalogue (the items topic)."""
    shared: SharedReader | None = None
    """The reader of the shared item knowledge (None when ``share_items`` is off)."""
    send_shared: Any = None
    """Publishes one record (key, value) of the shared topic (None when ``share_items`` is off)."""

    def restore(self) -> bool:
        """Load the rules file and the online models' last checkpoint (at start, before the stream runs)."""
        s = self.settings
        if s.rules_file is not None:
            self.pipeline.filter.rules = Rules.from_file(s.rules_file, s.catalogued_only)
        if s.experiments_file is not None:
            exp = Experiment.from_file(s.experiments_file)
            self.pipeline.set_experiment(exp)
            logging.getLogger(__name__).info("experiment %r: variants %s", exp.name, ", ".join(exp.names))
        return self.checkpoints.restore_into(self.pipeline)


EXIT_OUTPUT_FAILED = 75
"""Exit status of a worker that could not write an output (a supervisor restarts it; it replays)."""


def stop_worker(reason: str) -> None:
    """Stop the process at once, acknowledging and committing nothing more: what was not done is
    processed again from the last committed offset after the restart."""
    logging.getLogger(__name__).critical("stopping the worker (exit status %d): %s", EXIT_OUTPUT_FAILED, reason)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_OUTPUT_FAILED)


def stop_on_output_failure(output: Output, error: BaseException) -> None:
    stop_worker(f"{output.describe()} could not be written: {error!r}")


def owns_events_partition(app: faust.App, events: str, partition: int) -> bool:
    try:
        return any(tp.topic == events and tp.partition == partition for tp in app.consumer.assignment())
    except Exception:  # the consumer is not started yet
        return False


def check_files(s: Settings) -> None:
    """Read the rules and experiments files the settings name; raise on the first one that is bad."""
    if s.rules_file is not None:
        Rules.from_file(s.rules_file, s.catalogued_only)
    if s.experiments_file is not None:
        Experiment.from_file(s.experiments_file)


def build_pipeline(s: Settings) -> Pipeline:
    return Pipeline(
        filter=ListFilter(rules=Rules(catalogued_only=s.catalogued_only)),
        top_k=s.top_k,
        return_horizon_s=s.return_horizon_s,
        popularity_half_life_s=s.popularity_half_life_s,
        deep_pool=s.deep_pool,
        deep_history=s.deep_history,
        max_items=s.max_items,
        share_items=s.share_items,
        live=LiveQuality(window_s=s.attribution_window_s),
        event_weights={**FEEDBACK_WEIGHTS, **s.event_weights},
    )


def build_worker(s: Settings, outbox: Outbox | None = None) -> Worker:
    """Build a worker from ``s``; ``outbox`` replaces the producer (tests capture output with it)."""
    metrics = WorkerMetrics()
    app = create_app(s, metrics)
    topics = declare_topics(app, s)
    user_state = declare_user_state(app, s)
    out: Outbox = outbox if outbox is not None else ProducerOutbox(app)

    async def send_state(topic: str, key: bytes, value: bytes, partition: int) -> Any:
        return await out.send(topic, key, value, partition=partition)

    pipeline = build_pipeline(s)
    store = UserStateStore(FaustRocksTable(user_state), user_state.changelog_topic.get_topic_name(), send_state)
    scorer = Scorer(pipeline, s.batch_max, s.batch_wait_ms, s.queue_max, store=store,
                    recent_max=s.recent_max, purchased_max=s.purchased_max, metrics=metrics)
    w = Worker(
        settings=s, app=app, metrics=metrics, topics=topics, user_state=user_state, pipeline=pipeline,
        checkpoints=CheckpointStore(s.data_dir / "online" / "checkpoint.msgpack"), outbox=out, store=store,
        scorer=scorer, watcher=ModelWatcher(pipeline, s.registry_path, metrics=metrics, signing_key=s.signing_key),
        ingest=Ingest(app, s, topics, scorer, out, metrics),
    )
    if s.share_items:
        async def send_shared(key: bytes, value: bytes) -> Any:
            return await out.send(s.shared_topic, key, value)

        scorer.share = send_shared
        w.shared = SharedReader(pipeline, s.kafka_connection(), s.shared_topic, s.events_partitions, metrics,
                                s.shared_catchup_s, worker=s.instance_id or s.web_url,
                                weights_interval_s=s.share_weights_s)
        w.shared.models_lock = scorer.models_lock
        w.send_shared = send_shared
        w.shared.replication = s.topic_replication()
        if isinstance(out, ProducerOutbox):
            w.shared.on_fatal = stop_worker
    w.catalogue = CatalogueReader(pipeline.filter.catalogue, s.kafka_connection(), s.items_topic,
                                  s.events_partitions, metrics, s.shared_catchup_s, configs=s.topic_configs())
    w.catalogue.dead_letter = w.ingest.dead_letter
    w.catalogue.replication = s.topic_replication()
    w.catalogue.owns = lambda partition: owns_events_partition(app, topics.events_name, partition)
    if isinstance(out, ProducerOutbox):
        w.catalogue.on_fatal = stop_worker
        w.ingest.stop = stop_worker
        w.confirmer = scorer.confirmer = Confirmer(
            out.resend, w.ingest.ack, retry_s=s.output_retry_s, on_fatal=stop_on_output_failure)
    register_tasks(w)
    register_user_views(w)
    register_request_views(w)  # POST /recommend, /items/{id}/similar, /openapi.json
    register_probes(w)
    w.dashboard = register_dashboard(w)
    return w
