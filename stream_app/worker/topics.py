"""Every topic streamrec reads or writes, declared once.

The names default to the public contract (``events``, ``recommendations``, ``events-dlq``) and
can be changed through settings, e.g. to run several isolated pipelines on one cluster.
"""

from __future__ import annotations

from stream_app.settings import get_settings
from stream_app.worker.app import app

_s = get_settings()
EVENTS = _s.events_topic
RECOMMENDATIONS = _s.recommendations_topic
DLQ = _s.dlq_topic


def _raw_topic(name: str, partitions: int):
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=partitions,
    )


events_topic = _raw_topic(EVENTS, _s.events_partitions)
recommendations_topic = _raw_topic(RECOMMENDATIONS, _s.events_partitions)
dlq_topic = _raw_topic(DLQ, 1)
