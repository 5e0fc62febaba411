"""The Faust application of one worker: broker, RocksDB store, web server and Kafka security.

:func:`create_app` only builds the object; nothing connects until the worker starts.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.auth import SASLCredentials

from stream_app.broker.topics import resolve_replication
from stream_app.core.metrics import WorkerMetrics
from stream_app.kafka import KafkaConnection
from stream_app.settings import Settings
from stream_app.worker import faust_internals


def faust_credentials(conn: KafkaConnection) -> Any:
    """Kafka TLS / SASL credentials in Faust's terms, or None for plaintext."""
    if conn.security_protocol == "PLAINTEXT":
        return None
    context = conn.ssl_context()
    if conn.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    password = conn.sasl_password.get_secret_value() if conn.sasl_password is not None else None
    return SASLCredentials(
        username=conn.sasl_username, password=password, ssl_context=context, mechanism=conn.sasl_mechanism
    )


def topic_replication(s: Settings) -> tuple[int, int]:
    """Replication factor and ``min.insync.replicas`` of the topics Faust creates (the state changelog,
    the assignor's topic).

    ``auto`` counts as a single broker here: :func:`stream_app.worker.run.run_worker` replaces it
    with what the cluster it reaches gets before it builds the app.

    >>> topic_replication(Settings()), topic_replication(Settings(topic_replication_factor=3))
    ((1, 1), (3, 2))
    """
    rf, isr = s.topic_replication()
    return resolve_replication(rf, isr, brokers=rf or 1)


def create_app(s: Settings, metrics: WorkerMetrics) -> faust.App:
    """A Faust app for ``s`` (raw keys and values: the agents validate records themselves)."""
    app = faust.App(
        s.app_id,
        broker=s.broker,
        broker_credentials=faust_credentials(s.kafka_connection()),
        store="rocksdb://",
        datadir=str(s.data_dir / "faust"),
        topic_partitions=s.events_partitions,
        topic_replication_factor=topic_replication(s)[0],
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        table_standby_replicas=s.standby_replicas,
        broker_session_timeout=s.session_timeout_s,
        broker_heartbeat_interval=s.heartbeat_interval_s,
        consumer_group_instance_id=s.instance_id or None,
        web_host=s.advertised_web_host,
        web_bind=s.web_bind or s.web_host,
        canonical_url=f"http://{s.advertised_web_host}:{s.web_port}",
        web_port=s.web_port,
        web_in_thread=False,
        # Serve only the contract's views: no table dumps, no router or debug pages.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        consumer_auto_offset_reset="earliest",
        consumer_metadata_max_age_ms=int(s.metadata_max_age_s * 1000),
        producer_metadata_max_age_ms=int(s.metadata_max_age_s * 1000),
        broker_commit_interval=1.0,
        # Small polls and a roomy stream buffer: Faust stops fetching a partition once the buffer
        # is 80% full, and the remaining 20% holds several polls, so handing a record to the
        # stream rarely has to wait for room (a delivery that waits can outlive a rebalance and
        # hand an old record to the streams after the new assignment has started).
        broker_max_poll_records=500,
        stream_buffer_maxsize=8192,
        producer_linger=s.producer_linger_ms / 1000.0,
        producer_max_batch_size=256 * 1024,
    )
    # rewind uncommitted partitions; never commit unprocessed events
    faust_internals.install([s.events_topic], app=app, metrics=metrics)
    return app
