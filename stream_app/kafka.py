"""One way to reach Kafka: a :class:`KafkaConnection` made from the settings, and one builder per client.

Every Kafka client of streamrec (kafka-python's producer, consumer and admin client, aiokafka's
producer and consumer) is built here, so the TLS and SASL options of the settings reach all of
them. A builder takes the connection first and the caller's own options as keywords; the caller's
options are added to (and may override) the security options, but never the bootstrap servers.

Importing this module opens no connection and reads no settings.

>>> from pydantic import SecretStr
>>> conn = KafkaConnection("kafka://10.0.0.5:9093", security_protocol="SASL_PLAINTEXT",
...                        sasl_mechanism="PLAIN", sasl_username="svc", sasl_password=SecretStr("s3cret"))
>>> conn.bootstrap
'10.0.0.5:9093'
>>> "s3cret" in repr(conn)
False
>>> client_config(conn, acks="all")
{'bootstrap_servers': '10.0.0.5:9093', 'security_protocol': 'SASL_PLAINTEXT', 'sasl_mechanism': 'PLAIN',
 'sasl_plain_username': 'svc', 'sasl_plain_password': 's3cret', 'acks': 'all'}
>>> client_config(KafkaConnection("127.0.0.1:9092"), group_id=None)   # plaintext: no security options
{'bootstrap_servers': '127.0.0.1:9092', 'group_id': None}
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import SecretStr

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    from stream_app.settings import Settings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]

_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)


def normalize_bootstrap(bootstrap: str) -> str:
    """``host:port`` list as the clients want it: Faust's ``kafka://`` scheme and spaces removed.

    >>> normalize_bootstrap("kafka://a:9092, kafka://b:9092")
    'a:9092,b:9092'
    """
    return ",".join(part.strip().removeprefix("kafka://") for part in bootstrap.split(",") if part.strip())


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate to them; the same for every client kind.

    The password is a :class:`pydantic.SecretStr`: ``repr`` and logs show ``'**********'``, and
    only :meth:`client_kwargs` / :meth:`aiokafka_kwargs` reveal it, to hand it to a client.
    TLS files matter only for ``SSL`` / ``SASL_SSL``, the SASL fields only for ``SASL_*``.

    >>> KafkaConnection("127.0.0.1:9092", security_protocol="SASL_SSL")
    Traceback (most recent call last):
    ...
    ValueError: security_protocol SASL_SSL needs sasl_username and sasl_password
    """

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def __post_init__(self) -> None:
        bootstrap = normalize_bootstrap(self.bootstrap)
        if not bootstrap:
            raise ValueError("bootstrap needs at least one host:port")
        object.__setattr__(self, "bootstrap", bootstrap)
        if isinstance(self.sasl_password, str):  # be lenient at run time; the type says SecretStr
            object.__setattr__(self, "sasl_password", SecretStr(self.sasl_password))
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.security_protocol not in _PROTOCOLS:
            raise ValueError(f"security_protocol must be one of {', '.join(_PROTOCOLS)}, "
                             f"got {self.security_protocol!r}")
        if self.sasl_mechanism not in _MECHANISMS:
            raise ValueError(f"sasl_mechanism must be one of {', '.join(_MECHANISMS)}, got {self.sasl_mechanism!r}")
        if self.uses_sasl and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username and sasl_password")
        if self.uses_ssl and self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_keyfile is set without ssl_certfile")

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        """The connection described by the ``STREAMREC_BROKER`` / ``STREAMREC_SECURITY_*`` settings.

        >>> from stream_app.settings import Settings
        >>> KafkaConnection.from_settings(Settings(broker="kafka://h1:9092,kafka://h2:9092"))
        KafkaConnection(bootstrap='h1:9092,h2:9092', security_protocol='PLAINTEXT', ...)
        """
        return cls(
            bootstrap=settings.bootstrap,
            security_protocol=settings.security_protocol,
            sasl_mechanism=settings.sasl_mechanism,
            sasl_username=settings.sasl_username,
            sasl_password=settings.sasl_password,
            ssl_cafile=settings.ssl_cafile,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
        )

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def _sasl_kwargs(self) -> dict[str, Any]:
        if not self.uses_sasl:
            return {}
        return {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password.get_secret_value() if self.sasl_password else None,
        }

    def client_kwargs(self) -> dict[str, Any]:
        """Security options in kafka-python spelling (empty for plaintext); reveals the password.

        >>> KafkaConnection("h:9093", security_protocol="SSL", ssl_cafile=Path("/etc/ca.pem")).client_kwargs()
        {'security_protocol': 'SSL', 'ssl_cafile': '/etc/ca.pem'}
        >>> KafkaConnection("h:9092").client_kwargs()
        {}
        """
        if self.security_protocol == "PLAINTEXT":
            return {}
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_ssl:
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, key)
                if value is not None:
                    kw[key] = str(value)
        kw.update(self._sasl_kwargs())
        return kw

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context verifying the brokers against ``ssl_cafile`` (the system CAs without one),
        presenting ``ssl_certfile`` / ``ssl_keyfile`` when set; None unless the protocol uses TLS.

        A new context on each call (reads the files then: a missing file raises here).

        >>> KafkaConnection("h:9092").ssl_context() is None
        True
        """
        if not self.uses_ssl:
            return None
        context = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile is not None:
            context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None)
        return context

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Security options in aiokafka spelling (an ``ssl_context`` instead of files); reveals the password.

        >>> KafkaConnection("h:9092", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
        ...                 sasl_username="svc", sasl_password=SecretStr("pw")).aiokafka_kwargs()
        {'security_protocol': 'SASL_PLAINTEXT', 'sasl_mechanism': 'PLAIN', 'sasl_plain_username': 'svc',
         'sasl_plain_password': 'pw'}
        """
        if self.security_protocol == "PLAINTEXT":
            return {}
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_ssl:
            kw["ssl_context"] = self.ssl_context()
        kw.update(self._sasl_kwargs())
        return kw


KafkaTarget = str | KafkaConnection
"""What tools accept as "the broker": a connection, or a bare bootstrap string meaning plaintext."""


def as_connection(target: KafkaTarget) -> KafkaConnection:
    """``target`` itself if it is a connection, else a plaintext connection to that bootstrap string.

    For functions that accept either (tools pointed at a local plaintext broker by address).

    >>> as_connection("kafka://127.0.0.1:9092")
    KafkaConnection(bootstrap='127.0.0.1:9092', security_protocol='PLAINTEXT', ...)
    """
    return target if isinstance(target, KafkaConnection) else KafkaConnection(target)


def _merge(conn: KafkaConnection, security: dict[str, Any], kw: dict[str, Any]) -> dict[str, Any]:
    if "bootstrap_servers" in kw:
        raise TypeError("bootstrap_servers comes from the KafkaConnection; do not pass it as well")
    return {"bootstrap_servers": conn.bootstrap, **security, **kw}


def client_config(conn: KafkaConnection, **kw: Any) -> dict[str, Any]:
    """Keyword arguments of a kafka-python client: bootstrap, security options, then ``kw``."""
    return _merge(conn, conn.client_kwargs(), kw)


def aio_client_config(conn: KafkaConnection, **kw: Any) -> dict[str, Any]:
    """Keyword arguments of an aiokafka client: bootstrap, security options, then ``kw``."""
    return _merge(conn, conn.aiokafka_kwargs(), kw)


def kafka_producer(conn: KafkaConnection, **kw: Any) -> KafkaProducer:
    """A kafka-python ``KafkaProducer`` on ``conn``; ``kw`` are producer options (``acks``, ``linger_ms``...)."""
    from kafka import KafkaProducer

    return KafkaProducer(**client_config(conn, **kw))


def kafka_consumer(conn: KafkaConnection, *topics: str, **kw: Any) -> KafkaConsumer:
    """A kafka-python ``KafkaConsumer`` on ``conn``, subscribed to ``topics`` if any."""
    from kafka import KafkaConsumer

    return KafkaConsumer(*topics, **client_config(conn, **kw))


def kafka_admin(conn: KafkaConnection, **kw: Any) -> KafkaAdminClient:
    """A kafka-python ``KafkaAdminClient`` on ``conn`` (it connects while it is built)."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**client_config(conn, **kw))


def aio_producer(conn: KafkaConnection, **kw: Any) -> AIOKafkaProducer:
    """An aiokafka ``AIOKafkaProducer`` on ``conn`` (build it in a coroutine; it connects on ``start()``)."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**aio_client_config(conn, **kw))


def aio_consumer(conn: KafkaConnection, *topics: str, **kw: Any) -> AIOKafkaConsumer:
    """An aiokafka ``AIOKafkaConsumer`` on ``conn`` (build it in a coroutine; it connects on ``start()``)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, **aio_client_config(conn, **kw))


__all__ = [
    "KafkaConnection",
    "KafkaTarget",
    "SaslMechanism",
    "SecurityProtocol",
    "aio_client_config",
    "aio_consumer",
    "aio_producer",
    "as_connection",
    "client_config",
    "kafka_admin",
    "kafka_consumer",
    "kafka_producer",
    "normalize_bootstrap",
]
