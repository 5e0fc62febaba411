"""Each ``streamrec demo`` run on its own: a fresh consumer group, state folder and shared topic.

A demo run on a machine where earlier runs left their data must start as quickly and show as
much as the first. :func:`new_run` names the run and gives the worker's settings for it:

* its own consumer group (``STREAMREC_APP_ID``), so there is no earlier changelog to restore,
  and its own shared item-knowledge topic, so there is no earlier backlog to read;
* its own data folder under ``<data dir>/demo-runs/`` (tables, checkpoints, logs) and its own
  model registry in it; only the newest :data:`KEEP_RUNS` folders are kept;
* the group's offsets on ``events`` are committed at the topic's current end before the worker
  starts (:func:`start_at_end`), so it answers this run's events, not a backlog of earlier ones;
* :func:`new_events` counts this run's events, which is what the demo's training reads
  (``streamrec train --max-events``), not the whole topic of every earlier run.

:func:`prune_topics` deletes the topics that earlier runs' groups created (changelogs, the
shared topics); it never touches the contract's topics.

>>> from stream_app.settings import Settings
>>> run = new_run(Settings(), "demo-20261207-101500-42")
>>> run.env["STREAMREC_APP_ID"], run.env["STREAMREC_SHARED_TOPIC"]
('streamrec-demo-20261207-101500-42', 'item-knowledge-demo-20261207-101500-42')
>>> run.owns("streamrec-demo-20261207-090000-7-user_state-changelog"), run.owns("events")
(True, False)
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from stream_app.kafka import KafkaConnection, kafka_admin, kafka_consumer
from stream_app.settings import Settings

log = logging.getLogger(__name__)
KEEP_RUNS = 2
"""Demo runs whose data folders are kept (the newest ones, this one included)."""
PREFIX = "demo-"


@dataclass(frozen=True)
class DemoRun:
    """One demo run's name, its worker's settings (``env``) and the base settings it derives from."""

    name: str
    env: dict[str, str]
    app_id: str
    shared_topic: str
    folder: Path
    base_app_id: str
    base_shared_topic: str

    def owns(self, topic: str) -> bool:
        """Whether ``topic`` belongs to some demo run (a group's internal topic or a run's shared topic)."""
        return (topic.startswith(f"{self.base_app_id}-{PREFIX}")
                or topic.startswith(f"{self.base_shared_topic}-{PREFIX}"))

    def settings(self, base: Settings) -> Settings:
        """``base`` as this run's worker sees it."""
        return base.model_copy(update={"app_id": self.app_id, "shared_topic": self.shared_topic,
                                       "data_dir": self.folder, "registry_dir": self.folder / "registry"})


def new_run(s: Settings, name: str | None = None) -> DemoRun:
    """A fresh run (named by the time and process when ``name`` is None); see the module doc."""
    import os

    name = name or f"{PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    app_id, shared = f"{s.app_id}-{name}", f"{s.shared_topic}-{name}"
    folder = s.data_dir / "demo-runs" / name
    env = {"STREAMREC_APP_ID": app_id, "STREAMREC_SHARED_TOPIC": shared, "STREAMREC_DATA_DIR": str(folder),
           "STREAMREC_REGISTRY_DIR": str(folder / "registry")}
    return DemoRun(name, env, app_id, shared, folder, s.app_id, s.shared_topic)


def prune_folders(run: DemoRun, keep: int = KEEP_RUNS) -> list[Path]:
    """Delete all but the newest ``keep`` demo-run folders (this run's is never deleted); return them."""
    root = run.folder.parent
    if not root.is_dir():
        return []
    runs = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    gone = [p for p in runs[max(keep - 1, 0):] if p != run.folder]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def prune_topics(conn: KafkaConnection, run: DemoRun) -> list[str]:
    """Delete the topics of earlier demo runs (never this run's, never the contract's); return them."""
    admin = kafka_admin(conn)
    try:
        old = sorted(t for t in admin.list_topics()
                     if run.owns(t) and run.name not in t)
        if old:
            admin.delete_topics(old)
        return old
    finally:
        admin.close()


def _end_offsets(conn: KafkaConnection, topic: str) -> dict[int, int]:
    """The end offset of every partition of ``topic`` (empty when it does not exist)."""
    from kafka import TopicPartition

    consumer = kafka_consumer(conn, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: int(end) for tp, end in consumer.end_offsets(tps).items()} if tps else {}
    finally:
        consumer.close()


def start_at_end(conn: KafkaConnection, run: DemoRun, topic: str) -> dict[int, int]:
    """Commit the run's group at the end of ``topic`` (before its worker starts); return those offsets."""
    from kafka import OffsetAndMetadata, TopicPartition

    ends = _end_offsets(conn, topic)
    if ends:
        consumer = kafka_consumer(conn, group_id=run.app_id, enable_auto_commit=False)
        try:
            tps = {p: TopicPartition(topic, p) for p in ends}
            consumer.assign(list(tps.values()))
            consumer.commit({tps[p]: OffsetAndMetadata(end, "", -1) for p, end in ends.items()})
        finally:
            consumer.close()
    return ends


def new_events(conn: KafkaConnection, topic: str, start: dict[int, int]) -> int:
    """Records written to ``topic`` since ``start`` (offsets per partition)."""
    return sum(max(0, end - start.get(p, 0)) for p, end in _end_offsets(conn, topic).items())
