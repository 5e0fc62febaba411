"""The one settings object of streamrec, read from ``STREAMREC_*`` environment variables.

Every option is named by its environment variable: field ``web_port`` is ``STREAMREC_WEB_PORT``.
Nothing else in the code base reads the environment.

>>> s = Settings(broker="kafka://127.0.0.1:9999")
>>> s.bootstrap, s.web_port
('127.0.0.1:9999', 6066)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_app.kafka import KafkaConnection, SaslMechanism, SecurityProtocol


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMREC_", extra="ignore")

    # Kafka
    broker: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap URL(s), comma separated")
    events_partitions: int = Field(4, ge=1, description="partitions of the events topic when streamrec creates it")
    events_topic: str = Field("events", min_length=1, description="topic of incoming events")
    recommendations_topic: str = Field("recommendations", min_length=1, description="topic of recommendations")
    dlq_topic: str = Field("events-dlq", min_length=1, description="dead-letter topic of invalid events")
    items_topic: str = Field(
        "items", min_length=1, description="compacted topic of the item catalogue (key item_id; see schemas/)")
    shared_topic: str = Field(
        "item-knowledge", min_length=1,
        description="topic through which the workers of a group share what they learn about items")
    topic_replication_factor: int | Literal["auto"] = Field(
        "auto",
        description="replicas of every topic streamrec creates (events, recommendations, the state changelog...); "
                    "auto = 3, or one per live broker on a smaller cluster (1 on the local single broker)")
    min_insync_replicas: int | Literal["auto"] = Field(
        "auto",
        description="min.insync.replicas of every topic streamrec creates: replicas that must hold a write before "
                    "it is acknowledged (acks=all); auto = the replication factor minus one, at least 1 (2 of 3)")
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(None, description="shown as '**********' in logs and reprs")
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # Worker
    app_id: str = Field("streamrec", description="Faust app id = Kafka consumer group")
    data_dir: Path = Field(Path("var"), description="local state: RocksDB tables, checkpoints, registry, broker")
    registry_dir: Path | None = Field(None, description="model registry (default DATA_DIR/registry)")
    model_signing_key: SecretStr | None = Field(
        None, description="when set, the trainer signs the artifacts it writes and workers serve only those")
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)
    web_bind: str | None = Field(None, description="address the web server binds (default: WEB_HOST)")
    auth_token: str | None = Field(None, description="bearer token required by every page but /metrics and /health")
    peer_hosts: str = Field(
        "", max_length=4000,
        description="hosts (comma-separated, shell-style patterns such as 'worker-*') of group members that "
                    "may receive the caller's token: the dashboard's cluster view asks them, and per-user "
                    "requests are forwarded to them; loopback and this worker's own host are always allowed",
    )
    log_level: str = "info"
    top_k: int = Field(10, ge=1, le=100)
    recent_max: int = Field(50, ge=1, le=500, description="items kept in a user's recent sequence")
    purchased_max: int = Field(200, ge=1, description="purchased items remembered per user (never recommended)")
    batch_max: int = Field(256, ge=1, description="largest micro-batch scored in one pass")
    batch_wait_ms: float = Field(2.0, ge=0, description="how long a micro-batch waits to fill")
    queue_max: int = Field(2048, ge=1, description="events waiting to be scored before ingest waits")
    checkpoint_interval_s: float = Field(30.0, gt=0, description="online model checkpoint period")
    model_poll_s: float = Field(1.0, gt=0, description="how often workers look for a promoted deep model")
    return_horizon_s: float = Field(7 * 86400.0, gt=0, description="horizon of the return-probability model")
    popularity_half_life_s: float = Field(86400.0, gt=0, description="half-life of decayed popularity")
    deep_pool: int = Field(4096, ge=0, description="items the deep model retrieves from when serving (0 = all)")
    max_items: int = Field(
        1_000_000, ge=0,
        description="most items the online models hold (0 = no bound, at least 1000 otherwise): past it the "
                    "coldest by decayed popularity are forgotten; about 3 KB of memory per item held")
    producer_linger_ms: float = Field(5.0, ge=0, le=1000, description="how long the producer waits to fill a batch")
    metadata_max_age_s: float = Field(
        300.0, ge=1, le=86400,
        description="how often the worker's consumer and producer refresh the cluster's metadata: also how long a "
                    "deleted and recreated events topic goes unread")
    torch_threads: int = Field(1, ge=1, description="threads torch may use for scoring (more contend with Kafka)")
    deep_history: int = Field(20, ge=1, description="latest items of a user the deep model encodes when serving")
    rocksdb_block_cache_mb: int = Field(32, ge=1, description="RocksDB block cache per partition database")
    standby_replicas: int = Field(0, ge=0, description="standby table replicas for fast failover")
    session_timeout_s: float = Field(
        10.0, ge=6, le=300,
        description="consumer group session timeout: how long a killed worker keeps its partitions",
    )
    heartbeat_interval_s: float = Field(1.0, gt=0, le=100, description="consumer heartbeat period (< a third of the above)")
    max_future_s: float = Field(
        86400.0, gt=0, description="events whose ts is further ahead of the worker's clock are dead-lettered")
    max_age_s: float = Field(
        0.0, ge=0, description="events older than this are dead-lettered (0 = no limit, so old streams replay)")
    output_retry_s: float = Field(
        30.0, gt=0, le=3600,
        description="how long a failed output (recommendation, dead letter, changelog record) is sent again before "
                    "the worker stops without acknowledging its input (the restart replays it)",
    )
    attribution_window_s: float = Field(
        1800.0, ge=0, le=30 * 86400,
        description="a click or purchase counts for the live click-through and conversion when its item was in a "
                    "list pushed to the user at most this long before it (event time; 0 = never)")
    event_weights: dict[str, float] = Field(
        default_factory=dict,
        description="JSON object: how much each event type teaches the reranker, e.g. "
                    '{"purchase": 5, "dislike": 2} (types left out keep their defaults: view 1, click 1, '
                    "add_to_cart 2, purchase 3, dislike 1, hide 2)")
    rules_file: Path | None = Field(
        None, description="a JSON file of business rules every list obeys (see README: Item catalogue and rules)")
    catalogued_only: bool = Field(
        False, description="recommend only items the catalogue knows (default: unknown items are allowed)")
    experiments_file: Path | None = Field(
        None, description="a JSON file naming an experiment and its variants; users are split between them by a "
                          "stable hash (see README: Experiments)")
    share_items: bool = Field(
        True,
        description="learn popularity and co-occurrence from every worker's events through SHARED_TOPIC, so N "
                    "workers recommend as well as one (false: each worker learns only from its own partitions)",
    )
    share_weights_s: float = Field(
        5.0, ge=0, le=3600,
        description="with SHARE_ITEMS, how often the workers of a group average their rerankers' weights "
                    "(0 = never: each keeps what it learned from its own users)")
    shared_catchup_s: float = Field(
        60.0, ge=0, le=3600,
        description="how long a starting worker reads the shared topic's backlog before it starts scoring")
    instance_id: str = Field(
        "", max_length=200, pattern=r"^[A-Za-z0-9._-]*$",
        description="static group membership (KIP-345): a name unique to this worker that it keeps across "
                    "restarts; a restarted worker then gets its partitions back without a rebalance or waiting "
                    "out the session timeout (empty = dynamic membership)",
    )

    # Local broker (streamrec kafka up)
    kafka_cache_dir: Path = Field(Path.home() / ".cache" / "streamrec" / "kafka", description="cached Kafka jars")
    kafka_data_dir: Path = Field(Path("var") / "kafka", description="the local broker's logs and storage")

    @field_validator("event_weights")
    @classmethod
    def _check_event_weights(cls, v: dict[str, float]) -> dict[str, float]:
        from schemas import EVENT_TYPES, REJECTIONS

        known = (*EVENT_TYPES, *sorted(REJECTIONS))
        for name, w in v.items():
            if name not in known:
                raise ValueError(f"unknown event type {name!r}; expected some of {', '.join(known)}")
            if not 0 <= w < float("inf"):
                raise ValueError(f"the weight of {name!r} must be a finite number >= 0, got {w}")
        return v

    @field_validator("max_items")
    @classmethod
    def _check_max_items(cls, v: int) -> int:
        if 0 < v < 1000:
            raise ValueError(f"must be 0 (no bound) or at least 1000, got {v}")
        return v

    @field_validator("topic_replication_factor", "min_insync_replicas", mode="before")
    @classmethod
    def _check_replicas(cls, v: object) -> object:
        text = str(v).strip().lower()
        if text == "auto":
            return "auto"
        if isinstance(v, bool) or not text.isdigit() or not 1 <= int(text) <= 32:
            raise ValueError(f"must be auto or a whole number from 1 to 32, got {v!r}")
        return int(text)

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, v: str) -> str:
        for url in v.split(","):
            rest = url.strip().removeprefix("kafka://")
            host, sep, port = rest.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"STREAMREC_BROKER must look like kafka://host:port, got {v!r}")
        return v

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers without the ``kafka://`` scheme, as kafka-python and aiokafka want them."""
        return ",".join(u.strip().removeprefix("kafka://") for u in self.broker.split(","))

    @property
    def broker_host_port(self) -> tuple[str, int]:
        host, _, port = self.bootstrap.split(",")[0].rpartition(":")
        return host, int(port)

    @property
    def signing_key(self) -> bytes | None:
        """The model signing key as bytes (None: artifacts are not signed)."""
        key = self.model_signing_key
        return key.get_secret_value().encode() if key is not None and key.get_secret_value() else None

    @property
    def registry_path(self) -> Path:
        return self.registry_dir or self.data_dir / "registry"

    @property
    def advertised_web_host(self) -> str:
        """The host other workers use to reach this one (the machine's name when bound to all addresses)."""
        if self.web_host in ("0.0.0.0", "::", ""):
            import socket

            return socket.gethostname()
        return self.web_host

    @property
    def web_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"

    def topic_partitions(self) -> dict[str, int]:
        """The topics streamrec reads and writes, with the partition counts it creates them with."""
        return {
            self.events_topic: self.events_partitions,
            self.recommendations_topic: self.events_partitions,
            self.dlq_topic: 1,
            self.shared_topic: self.events_partitions,
            self.items_topic: self.events_partitions,
        }

    def topic_configs(self) -> dict[str, dict[str, str]]:
        """Topic configurations streamrec creates topics with (the catalogue is compacted by item)."""
        return {self.items_topic: {"cleanup.policy": "compact"}}

    def topic_replication(self) -> tuple[int | None, int | None]:
        """(replication factor, min.insync.replicas) as set, None where a setting is ``auto``: what the
        broker tools take (they resolve auto against the cluster they reach).

        >>> Settings().topic_replication(), Settings(topic_replication_factor="3").topic_replication()
        ((None, None), (3, None))
        """
        rf, isr = self.topic_replication_factor, self.min_insync_replicas
        return (rf if isinstance(rf, int) else None), (isr if isinstance(isr, int) else None)

    def kafka_connection(self, bootstrap: str | None = None) -> KafkaConnection:
        """The Kafka connection these settings describe: every Kafka client is built on it.

        ``bootstrap`` replaces the brokers' address (same TLS / SASL options).

        >>> Settings(broker="kafka://127.0.0.1:9999").kafka_connection().bootstrap
        '127.0.0.1:9999'
        >>> Settings().kafka_connection("kafka://10.1.1.1:9092").bootstrap
        '10.1.1.1:9092'
        """
        conn = KafkaConnection.from_settings(self)
        return dataclasses.replace(conn, bootstrap=bootstrap) if bootstrap else conn


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()


def env_name(field: str) -> str:
    """The environment variable of a settings field, e.g. ``web_port`` -> ``STREAMREC_WEB_PORT``."""
    return "STREAMREC_" + field.upper()


_CONNECTION_FIELDS = ("broker", "security_protocol", "sasl_mechanism", "sasl_username", "sasl_password",
                      "ssl_cafile", "ssl_certfile", "ssl_keyfile")


def env_with_connection(conn: KafkaConnection, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the ``STREAMREC_*`` Kafka variables set to ``conn``.

    For child processes that read their settings: they then reach Kafka exactly as ``conn`` does.
    The result holds the SASL password in clear, as the environment of such a child must.

    >>> env = env_with_connection(KafkaConnection("h:9093", security_protocol="SSL"), {"STREAMREC_SSL_KEYFILE": "k"})
    >>> sorted(env.items())
    [('STREAMREC_BROKER', 'kafka://h:9093'), ('STREAMREC_SASL_MECHANISM', 'SCRAM-SHA-512'), ('STREAMREC_SECURITY_PROTOCOL', 'SSL')]
    >>> Settings(_env_file=None, **{k.removeprefix("STREAMREC_").lower(): v for k, v in env.items()}).kafka_connection() == KafkaConnection("h:9093", security_protocol="SSL")
    True
    """
    env = dict(os.environ if base is None else base)
    for name in _CONNECTION_FIELDS:
        env.pop(env_name(name), None)
    env[env_name("broker")] = ",".join(f"kafka://{hp}" for hp in conn.bootstrap.split(","))
    env[env_name("security_protocol")] = conn.security_protocol
    env[env_name("sasl_mechanism")] = conn.sasl_mechanism
    if conn.sasl_username is not None:
        env[env_name("sasl_username")] = conn.sasl_username
    if conn.sasl_password is not None:
        env[env_name("sasl_password")] = conn.sasl_password.get_secret_value()
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(conn, name)
        if value is not None:
            env[env_name(name)] = str(value)
    return env


__all__ = ["Settings", "env_name", "env_with_connection", "get_settings"]
