"""Topic checks and creation through kafka-python's admin client.

Each function takes the broker as a :class:`~stream_app.kafka.KafkaConnection` (TLS / SASL
included) or as a bare ``host:port`` string (plaintext, as for the local broker).

>>> validate_topics({"events": 4})
{'events': 4}
>>> validate_topics({"bad name": 1})
Traceback (most recent call last):
...
stream_app.broker.errors.BrokerError: invalid topic name 'bad name': use 1-249 of [A-Za-z0-9._-]
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream_app.kafka import KafkaTarget, as_connection, kafka_admin

from .errors import BrokerError

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_LOG = logging.getLogger(__name__)


def validate_topics(topics: Mapping[str, int]) -> dict[str, int]:
    """Check topic names and partition counts; return them as a plain dict."""
    out: dict[str, int] = {}
    for name, parts in topics.items():
        if not isinstance(name, str) or not _NAME.match(name) or name in {".", ".."}:
            raise BrokerError(f"invalid topic name {name!r}: use 1-249 of [A-Za-z0-9._-]")
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise BrokerError(f"topic {name!r} needs a whole number of partitions >= 1, got {parts!r}")
        out[name] = parts
    return out


def admin(kafka: KafkaTarget, timeout: float = 5.0) -> KafkaAdminClient:
    """An admin client that gives up after ``timeout`` seconds if nothing answers."""
    ms = max(500, int(timeout * 1000))
    return kafka_admin(as_connection(kafka), client_id="streamrec-broker", bootstrap_timeout_ms=ms,
                       request_timeout_ms=ms, reconnect_backoff_max_ms=1000)


def topic_partitions(client: KafkaAdminClient) -> dict[str, int]:
    """Every non-internal topic with its partition count."""
    return {t["name"]: len(t["partitions"]) for t in client.describe_topics()
            if not t.get("is_internal") and not t["name"].startswith("__")}


def probe(kafka: KafkaTarget, timeout: float = 2.0) -> dict[str, int] | None:
    """The broker's topics if a Kafka broker answers at ``kafka`` within ``timeout``, else None."""
    conn = as_connection(kafka)
    bootstrap = conn.bootstrap
    try:
        client = admin(conn, timeout)
    except (KafkaError, OSError) as exc:
        _LOG.debug("no Kafka at %s: %s", bootstrap, exc)
        return None
    try:
        return topic_partitions(client)
    except (KafkaError, OSError) as exc:
        _LOG.debug("metadata from %s failed: %s", bootstrap, exc)
        return None
    finally:
        client.close()


def ensure_topics(kafka: KafkaTarget, topics: Mapping[str, int], timeout: float = 30.0,
                  configs: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Create the missing topics (replication 1) and wait until every partition has a leader.

    ``configs`` gives topic configurations (e.g. ``{"items": {"cleanup.policy": "compact"}}``) used
    when a topic is created; an existing topic is not changed.

    An existing topic with a different partition count is an error: keyed data and Faust's
    table changelogs rely on the count, so it is never changed silently.
    """
    wanted = validate_topics(topics)
    if not wanted:
        return
    conn = as_connection(kafka)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = admin(conn, min(10.0, max(1.0, deadline - time.monotonic())))
        except (KafkaError, OSError) as exc:
            last = exc
            time.sleep(0.5)
            continue
        try:
            _create_missing(client, wanted, configs or {})
            left_ms = int(max(1.0, deadline - time.monotonic()) * 1000)
            client.wait_for_topics(list(wanted), timeout_ms=left_ms)
            return
        except BrokerError:
            raise
        except (KafkaError, OSError) as exc:  # broker still settling: retry until the deadline
            last = exc
            time.sleep(0.5)
        finally:
            client.close()
    raise BrokerError(f"topics {sorted(wanted)} not ready on {conn.bootstrap} after {timeout:.0f} s "
                      f"({type(last).__name__ if last else 'timeout'}: {last}); see the broker log")


def _create_missing(client: KafkaAdminClient, wanted: dict[str, int],
                    configs: Mapping[str, Mapping[str, str]]) -> None:
    existing = topic_partitions(client)
    for name, parts in wanted.items():
        if name in existing and existing[name] != parts:
            raise BrokerError(
                f"topic {name!r} exists with {existing[name]} partitions but {parts} are configured; "
                "use the existing count, or delete the topic (or the broker's data folder) and retry")
    missing = {n: {"num_partitions": p, "replication_factor": 1, **({"configs": dict(configs[n])} if n in configs else {})}
               for n, p in wanted.items() if n not in existing}
    if not missing:
        return
    result = client.create_topics(missing, raise_errors=False)
    for topic in result.get("topics", []):
        code = topic.get("error_code", 0)
        if code and code != TopicAlreadyExistsError.errno:
            raise KafkaError(f"creating {topic.get('name')}: error {code} {topic.get('error_message')}")
