"""Topic checks and creation through kafka-python's admin client.

Each function takes the broker as a :class:`~stream_app.kafka.KafkaConnection` (TLS / SASL
included) or as a bare ``host:port`` string (plaintext, as for the local broker).

>>> validate_topics({"events": 4})
{'events': 4}
>>> validate_topics({"bad name": 1})
Traceback (most recent call last):
...
stream_app.broker.errors.BrokerError: invalid topic name 'bad name': use 1-249 of [A-Za-z0-9._-]
>>> resolve_replication(None, None, brokers=1), resolve_replication(None, None, brokers=5)
((1, 1), (3, 2))
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

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


class TooFewBrokers(BrokerError):
    """Fewer brokers are up than a topic's replicas (may pass while a broker restarts)."""


AUTO_REPLICAS = 3
"""Replicas of a topic when the replication factor is ``auto`` (fewer on a smaller cluster)."""


def resolve_replication(factor: int | None, min_insync: int | None, brokers: int) -> tuple[int, int]:
    """The replication factor and ``min.insync.replicas`` of topics created on ``brokers`` live brokers.

    ``None`` means auto: 3 replicas (one per broker on a smaller cluster), and all but one of
    them in sync (at least 1), so an acknowledged write survives losing any one broker and the
    topic stays writable while one is down. Explicit values are checked against the cluster.

    >>> resolve_replication(None, None, 3), resolve_replication(None, None, 2), resolve_replication(2, 2, 3)
    ((3, 2), (2, 1), (2, 2))
    >>> resolve_replication(3, None, 1)
    Traceback (most recent call last):
    ...
    stream_app.broker.topics.TooFewBrokers: replication factor 3 needs 3 brokers but 1 is up; ...
    """
    rf = min(AUTO_REPLICAS, max(1, brokers)) if factor is None else factor
    isr = max(1, rf - 1) if min_insync is None else min_insync
    if rf < 1 or isr < 1:
        raise BrokerError(f"replication factor ({rf}) and min.insync.replicas ({isr}) must be >= 1")
    if rf > brokers:
        raise TooFewBrokers(f"replication factor {rf} needs {rf} brokers but {brokers} "
                          f"{'is' if brokers == 1 else 'are'} up; set STREAMREC_TOPIC_REPLICATION_FACTOR to at most "
                          f"{brokers} (or auto), or start more brokers")
    if isr > rf:
        raise BrokerError(f"min.insync.replicas {isr} is more than the {rf} replicas: no write could succeed; "
                          f"set STREAMREC_MIN_INSYNC_REPLICAS to at most {rf} (or auto)")
    return rf, isr


def admin(kafka: KafkaTarget, timeout: float = 5.0) -> KafkaAdminClient:
    """An admin client that gives up after ``timeout`` seconds if nothing answers."""
    ms = max(500, int(timeout * 1000))
    return kafka_admin(as_connection(kafka), client_id="streamrec-broker", bootstrap_timeout_ms=ms,
                       request_timeout_ms=ms, reconnect_backoff_max_ms=1000)


def topic_partitions(client: KafkaAdminClient) -> dict[str, int]:
    """Every non-internal topic with its partition count."""
    return {t["name"]: len(t["partitions"]) for t in client.describe_topics()
            if not t.get("is_internal") and not t["name"].startswith("__")}


def broker_ids(client: KafkaAdminClient) -> list[int]:
    """The ids of the brokers the cluster's metadata lists (the live, unfenced ones)."""
    return sorted(int(b["broker_id"]) for b in client.describe_cluster()["brokers"])


def cluster_brokers(kafka: KafkaTarget, timeout: float = 2.0) -> list[int] | None:
    """The live brokers' ids if the cluster answers at ``kafka`` within ``timeout``, else None."""
    conn = as_connection(kafka)
    try:
        client = admin(conn, timeout)
    except (KafkaError, OSError):
        return None
    try:
        return broker_ids(client)
    except (KafkaError, OSError):
        return None
    finally:
        client.close()


def describe_partitions(kafka: KafkaTarget, topics: list[str], timeout: float = 5.0) -> list[dict[str, Any]]:
    """``{"topic", "partition", "leader", "replicas", "isr"}`` of every partition of ``topics``
    (``leader`` -1 while the partition has none).

    Raises :class:`KafkaError` when the broker asked does not know a topic (yet: a cluster's
    brokers learn of a new topic one after the other).
    """
    client = admin(as_connection(kafka), timeout)
    try:
        found = client.describe_topics(topics)
    finally:
        client.close()
    out = []
    for t in found:
        if t.get("error_code") or not t["partitions"]:
            raise KafkaError(f"topic {t['name']!r} unknown to the broker asked (error {t.get('error_code')})")
        out += [{"topic": t["name"], "partition": int(p["partition_index"]), "leader": int(p["leader_id"]),
                 "replicas": sorted(p["replica_nodes"]), "isr": sorted(p["isr_nodes"])} for p in t["partitions"]]
    return sorted(out, key=lambda d: (d["topic"], d["partition"]))


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
                  configs: Mapping[str, Mapping[str, str]] | None = None, *, replication: int | None = None,
                  min_insync: int | None = None) -> None:
    """Create the missing topics and wait until every partition has a leader.

    A topic is created with ``replication`` replicas and its ``min.insync.replicas`` set to
    ``min_insync``; None is auto for either (see :func:`resolve_replication`: 1 on a single
    broker, 3 and 2 on a cluster of three or more). ``configs`` gives more topic configurations
    (e.g. ``{"items": {"cleanup.policy": "compact"}}``) used when a topic is created; an existing
    topic is not changed.

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
            _create_missing(client, wanted, configs or {}, replication, min_insync)
            left_ms = int(max(1.0, deadline - time.monotonic()) * 1000)
            client.wait_for_topics(list(wanted), timeout_ms=left_ms)
            return
        except TooFewBrokers as exc:  # a broker may be restarting: wait for it until the deadline
            last = exc
            time.sleep(0.5)
        except BrokerError:
            raise
        except (KafkaError, OSError) as exc:  # broker still settling: retry until the deadline
            last = exc
            time.sleep(0.5)
        finally:
            client.close()
    if isinstance(last, TooFewBrokers):
        raise last
    raise BrokerError(f"topics {sorted(wanted)} not ready on {conn.bootstrap} after {timeout:.0f} s "
                      f"({type(last).__name__ if last else 'timeout'}: {last}); see the broker log")


def _create_missing(client: KafkaAdminClient, wanted: dict[str, int], configs: Mapping[str, Mapping[str, str]],
                    replication: int | None, min_insync: int | None) -> None:
    existing = topic_partitions(client)
    for name, parts in wanted.items():
        if name in existing and existing[name] != parts:
            raise BrokerError(
                f"topic {name!r} exists with {existing[name]} partitions but {parts} are configured; "
                "use the existing count, or delete the topic (or the broker's data folder) and retry")
    if all(n in existing for n in wanted):
        return
    rf, isr = resolve_replication(replication, min_insync, len(broker_ids(client)))
    missing = {n: {"num_partitions": p, "replication_factor": rf,
                   "configs": {"min.insync.replicas": str(isr), **configs.get(n, {})}}
               for n, p in wanted.items() if n not in existing}
    result = client.create_topics(missing, raise_errors=False)
    for topic in result.get("topics", []):
        code = topic.get("error_code", 0)
        if code and code != TopicAlreadyExistsError.errno:
            raise KafkaError(f"creating {topic.get('name')}: error {code} {topic.get('error_message')}")
