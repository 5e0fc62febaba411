"""Every topic a worker reads or writes, declared on its Faust app.

The names default to the public contract (``events``, ``recommendations``, ``events-dlq``) and
can be changed through settings, e.g. to run several isolated pipelines on one cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from stream_app.settings import Settings


@dataclass(frozen=True)
class Topics:
    events: Any
    """The Faust topic of incoming events (raw bytes)."""
    recommendations: str
    dlq: str

    @property
    def events_name(self) -> str:
        return str(self.events.get_topic_name())


def declare_topics(app: faust.App, s: Settings) -> Topics:
    events = app.topic(
        s.events_topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=s.events_partitions,
    )
    return Topics(events=events, recommendations=s.recommendations_topic, dlq=s.dlq_topic)
