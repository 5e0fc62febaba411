"""Start a Faust worker of the streamrec app (what ``streamrec worker`` runs)."""

from __future__ import annotations

from stream_app.broker.errors import BrokerError
from stream_app.broker.topics import resolve_replication
from stream_app.settings import Settings
from stream_app.worker.tables import changelog_name


def check_partitions(s: Settings, topics: dict[str, int] | None) -> None:
    """Refuse to start when the events topic and the state changelog disagree on partitions.

    A user's state lives in the changelog partition numbered like the partition of their
    events; with different counts every event would fail. ``topics`` is the broker's
    ``{name: partitions}`` (None when it did not answer: Faust then waits for it).

    >>> s = Settings(events_topic="ev", app_id="g", events_partitions=4)
    >>> check_partitions(s, {"ev": 4, "g-user_state-changelog": 4})
    >>> check_partitions(s, {"ev": 1})
    Traceback (most recent call last):
    ...
    stream_app.broker.errors.BrokerError: topic 'ev' has 1 partition(s) but STREAMREC_EVENTS_PARTITIONS is 4; ...
    """
    if not topics:
        return
    events = topics.get(s.events_topic)
    changelog = topics.get(changelog_name(s))
    if events is not None and events != s.events_partitions:
        raise BrokerError(
            f"topic {s.events_topic!r} has {events} partition(s) but STREAMREC_EVENTS_PARTITIONS is "
            f"{s.events_partitions}; set STREAMREC_EVENTS_PARTITIONS={events}, or recreate the topic with "
            f"{s.events_partitions} partitions (`streamrec kafka up` creates the topics before any producer does)"
        )
    if changelog is not None and changelog != s.events_partitions:
        raise BrokerError(
            f"state changelog {changelog_name(s)!r} has {changelog} partition(s) but the events topic needs "
            f"{s.events_partitions}; a user's state must live on the partition of their events: use another "
            f"STREAMREC_APP_ID or delete that changelog (its state is rebuilt from the events only by a replay)"
        )


def with_replication(s: Settings, brokers: int) -> Settings:
    """``s`` with ``auto`` replication settings replaced by what a cluster of ``brokers`` live brokers gets.

    >>> r = with_replication(Settings(), 3)
    >>> r.topic_replication_factor, r.min_insync_replicas
    (3, 2)
    >>> with_replication(Settings(min_insync_replicas=1), 1).topic_replication()
    (1, 1)
    """
    rf, isr = resolve_replication(*s.topic_replication(), brokers=brokers)
    return s.model_copy(update={"topic_replication_factor": rf, "min_insync_replicas": isr})


def count_brokers(s: Settings, log_every_s: float = 10.0) -> int:
    """The cluster's live brokers, waiting for it to answer (as Faust waits for it) and saying so."""
    import logging
    import time

    from stream_app.broker.topics import cluster_brokers

    waited = time.monotonic()
    while True:
        ids = cluster_brokers(s.kafka_connection(), timeout=5.0)
        if ids:
            return len(ids)
        if time.monotonic() - waited >= log_every_s:
            logging.getLogger(__name__).warning(
                "no Kafka broker answers at %s: waiting for it to count its brokers (the replication of the "
                "topics this worker creates, STREAMREC_TOPIC_REPLICATION_FACTOR=auto, depends on them)", s.bootstrap)
            waited = time.monotonic()
        time.sleep(1.0)


def run_worker(s: Settings | None = None) -> None:
    """Check Faust and the topics, build the worker, restore its models and run it until stopped."""
    import faust
    import torch

    from stream_app.broker.topics import probe
    from stream_app.worker import faust_internals
    from stream_app.worker.build import build_worker, check_files

    s = s if s is not None else Settings()
    check_files(s)  # a bad rules or experiments file is reported before anything connects
    faust_internals.check()
    check_partitions(s, probe(s.kafka_connection(), timeout=5.0))
    # auto replication is what the cluster has now; an explicit factor is Kafka's to check if a topic is
    # created (a broker down while this worker starts must not stop it when its topics exist)
    factor = s.topic_replication()[0]
    s = with_replication(s, factor if factor is not None else count_brokers(s))
    s.data_dir.mkdir(parents=True, exist_ok=True)
    # OpenMP threads spin while they wait: on a machine shared with Kafka one thread scores faster
    torch.set_num_threads(s.torch_threads)
    w = build_worker(s)
    w.restore()
    faust.Worker(w.app, loglevel=s.log_level, redirect_stdouts=False).execute_from_commandline()
