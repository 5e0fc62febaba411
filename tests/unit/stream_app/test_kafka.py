"""Every Kafka client is built from one KafkaConnection and gets its TLS / SASL options (no broker needed)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import kafka as kafka_python
import pytest
from pydantic import SecretStr

from stream_app import kafka as k
from stream_app.kafka import KafkaConnection
from stream_app.settings import Settings

PASSWORD = "hunter2-Pa55"
# kafka-python's producer and consumer connect lazily when the broker version is given
NO_PROBE = {"api_version": (2, 8)}


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A throw-away self-signed certificate and its key (it serves as the CA too)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, cert, key


def _settings(protocol: str, certs: tuple[Path, Path, Path] | None = None) -> Settings:
    kw: dict = {"broker": "kafka://10.9.9.9:9093", "security_protocol": protocol}
    if protocol.startswith("SASL"):
        kw.update(sasl_mechanism="SCRAM-SHA-256", sasl_username="svc", sasl_password=PASSWORD)
    if certs is not None:
        kw.update(ssl_cafile=certs[0], ssl_certfile=certs[1], ssl_keyfile=certs[2])
    return Settings(_env_file=None, **kw)


def _expected(protocol: str, certs: tuple[Path, Path, Path] | None) -> dict:
    want: dict = {"security_protocol": protocol}
    if protocol.endswith("SSL") and certs is not None:
        want.update(ssl_cafile=str(certs[0]), ssl_certfile=str(certs[1]), ssl_keyfile=str(certs[2]))
    if protocol.startswith("SASL"):
        want.update(sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="svc", sasl_plain_password=PASSWORD)
    return want


SECURED = ["SASL_SSL", "SSL", "SASL_PLAINTEXT"]


@pytest.mark.parametrize("protocol", SECURED)
def test_connection_from_settings_maps_the_options(protocol, certs):
    tls = certs if protocol.endswith("SSL") else None
    conn = _settings(protocol, tls).kafka_connection()
    assert conn.bootstrap == "10.9.9.9:9093"
    assert conn.client_kwargs() == _expected(protocol, tls)
    aio = conn.aiokafka_kwargs()
    assert aio["security_protocol"] == protocol
    if protocol.endswith("SSL"):
        assert isinstance(aio["ssl_context"], ssl.SSLContext)
        assert aio["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    else:
        assert "ssl_context" not in aio and conn.ssl_context() is None
    if protocol.startswith("SASL"):
        assert (aio["sasl_mechanism"], aio["sasl_plain_username"], aio["sasl_plain_password"]) == (
            "SCRAM-SHA-256", "svc", PASSWORD)


def test_ssl_context_trusts_the_ca_and_presents_the_certificate(certs):
    ctx = _settings("SSL", certs).kafka_connection().ssl_context()
    assert ctx is not None and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "localhost"),),)]


@pytest.mark.parametrize("protocol", SECURED)
def test_kafka_python_producer_and_consumer_get_the_options(protocol, certs):
    tls = certs if protocol.endswith("SSL") else None
    conn = _settings(protocol, tls).kafka_connection()
    want = _expected(protocol, tls)
    producer = k.kafka_producer(conn, acks="all", **NO_PROBE)
    try:
        assert producer.config["bootstrap_servers"] == "10.9.9.9:9093"
        assert {key: producer.config[key] for key in want} == want
        assert producer.config["acks"] == -1  # the caller's own option, as kafka-python stores it
    finally:
        producer.close(timeout=0)
    consumer = k.kafka_consumer(conn, "events", group_id=None, **NO_PROBE)
    try:
        assert {key: consumer.config[key] for key in want} == want
        assert consumer.subscription() == {"events"}
    finally:
        consumer.close()


@pytest.mark.parametrize("protocol", SECURED)
def test_kafka_python_admin_gets_the_options(protocol, certs, monkeypatch):
    """The admin client connects while it is built: check what the builder hands it."""
    tls = certs if protocol.endswith("SSL") else None
    conn = _settings(protocol, tls).kafka_connection()
    seen: dict = {}

    class FakeAdmin:
        def __init__(self, **config):
            seen.update(config)

    monkeypatch.setattr(kafka_python, "KafkaAdminClient", FakeAdmin)
    assert isinstance(k.kafka_admin(conn, request_timeout_ms=1234), FakeAdmin)
    assert seen == {"bootstrap_servers": "10.9.9.9:9093", **_expected(protocol, tls), "request_timeout_ms": 1234}


def test_kafka_admin_fails_fast_without_a_broker():
    conn = KafkaConnection("127.0.0.1:1")
    with pytest.raises(kafka_python.errors.KafkaError):
        k.kafka_admin(conn, bootstrap_timeout_ms=300, request_timeout_ms=300, **NO_PROBE)


@pytest.mark.parametrize("protocol", SECURED)
async def test_aiokafka_clients_get_the_options(protocol, certs):
    tls = certs if protocol.endswith("SSL") else None
    conn = _settings(protocol, tls).kafka_connection()
    producer = k.aio_producer(conn, acks=1)
    consumer = k.aio_consumer(conn, "events", group_id=None)
    try:
        for client in (producer.client, consumer._client):
            assert client._bootstrap_servers == "10.9.9.9:9093"
            assert client._security_protocol == protocol
            if protocol.endswith("SSL"):
                assert isinstance(client._ssl_context, ssl.SSLContext)
            else:
                assert client._ssl_context is None
            if protocol.startswith("SASL"):
                assert client._sasl_mechanism == "SCRAM-SHA-256"
                assert client._sasl_plain_username == "svc"
                assert client._sasl_plain_password == PASSWORD
        assert consumer.subscription() == {"events"}
    finally:
        await producer.stop()
        await consumer.stop()


async def test_plaintext_passes_no_security_options():
    conn = Settings(_env_file=None, broker="kafka://127.0.0.1:9092").kafka_connection()
    assert conn.client_kwargs() == {} and conn.aiokafka_kwargs() == {} and conn.ssl_context() is None
    assert k.client_config(conn, linger_ms=5) == {"bootstrap_servers": "127.0.0.1:9092", "linger_ms": 5}
    producer = k.kafka_producer(conn, **NO_PROBE)
    try:
        assert producer.config["security_protocol"] == "PLAINTEXT"
        assert producer.config["sasl_plain_password"] is None
    finally:
        producer.close(timeout=0)
    consumer = k.aio_consumer(conn)
    try:
        assert consumer._client._security_protocol == "PLAINTEXT"
        assert consumer._client._ssl_context is None
    finally:
        await consumer.stop()


def test_the_password_never_shows(certs):
    s = _settings("SASL_SSL", certs)
    conn = s.kafka_connection()
    assert isinstance(s.sasl_password, SecretStr)
    for text in (repr(conn), str(conn), str(s), repr(s), repr(s.model_dump())):
        assert PASSWORD not in text
    assert "**********" in repr(conn)


def test_builders_keep_the_bootstrap_from_the_connection():
    with pytest.raises(TypeError, match="bootstrap_servers"):
        k.client_config(KafkaConnection("h:9092"), bootstrap_servers="other:9092")


@pytest.mark.parametrize("kw,message", [
    ({"security_protocol": "TLS"}, "security_protocol"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "svc"}, "sasl_password"),
    ({"security_protocol": "SSL", "ssl_keyfile": Path("k.pem")}, "ssl_certfile"),
    ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
])
def test_inconsistent_connections_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        KafkaConnection("h:9092", **kw)


def test_a_bootstrap_string_means_plaintext():
    conn = k.as_connection("kafka://a:1, kafka://b:2")
    assert conn == KafkaConnection("a:1,b:2") and conn.security_protocol == "PLAINTEXT"
    secured = KafkaConnection("a:1", security_protocol="SASL_PLAINTEXT", sasl_username="u",
                              sasl_password=SecretStr("p"))
    assert k.as_connection(secured) is secured


def test_child_process_environment_carries_the_connection(certs):
    from stream_app.settings import env_with_connection

    conn = _settings("SASL_SSL", certs).kafka_connection()
    env = env_with_connection(conn, {"STREAMREC_SSL_CAFILE": "/stale.pem", "OTHER": "x"})
    assert env["OTHER"] == "x" and env["STREAMREC_SASL_PASSWORD"] == PASSWORD
    fields = {key.removeprefix("STREAMREC_").lower(): v for key, v in env.items() if key.startswith("STREAMREC_")}
    assert Settings(_env_file=None, **fields).kafka_connection() == conn
