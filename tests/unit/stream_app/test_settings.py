"""Settings come from STREAMREC_* variables, are validated, and map to Kafka client options."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream_app.settings import Settings, env_name


def test_every_field_is_named_by_its_variable(monkeypatch):
    monkeypatch.setenv("STREAMREC_WEB_PORT", "7001")
    monkeypatch.setenv("STREAMREC_EVENTS_TOPIC", "clicks")
    monkeypatch.setenv("STREAMREC_BROKER", "kafka://10.0.0.5:9093,kafka://10.0.0.6:9093")
    s = Settings()
    assert s.web_port == 7001 and s.events_topic == "clicks"
    assert s.bootstrap == "10.0.0.5:9093,10.0.0.6:9093"
    assert env_name("web_port") == "STREAMREC_WEB_PORT"
    assert s.topic_partitions() == {"clicks": 4, "recommendations": 4, "events-dlq": 1, "item-knowledge": 4, "items": 4}


def test_defaults_follow_the_contract():
    s = Settings(_env_file=None)
    assert s.broker == "kafka://127.0.0.1:9092"
    assert (s.web_host, s.web_port) == ("127.0.0.1", 6066)
    assert (s.events_topic, s.recommendations_topic, s.dlq_topic) == ("events", "recommendations", "events-dlq")
    assert s.kafka_connection().client_kwargs() == {}


@pytest.mark.parametrize("field,value", [("broker", "localhost"), ("web_port", "0"), ("top_k", "0"),
                                         ("security_protocol", "TLS"), ("batch_max", "-1")])
def test_bad_values_are_refused(field, value):
    with pytest.raises(ValidationError):
        Settings(**{field: value})


def test_secured_kafka_options(tmp_path):
    ca = tmp_path / "ca.pem"
    s = Settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", sasl_username="svc",
                 sasl_password="pw", ssl_cafile=ca)
    assert s.kafka_connection().client_kwargs() == {
        "security_protocol": "SASL_SSL", "ssl_cafile": str(ca), "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc", "sasl_plain_password": "pw",
    }
    assert "'pw'" not in str(s) and s.sasl_password is not None and s.sasl_password.get_secret_value() == "pw"


def test_the_password_comes_from_its_variable(monkeypatch):
    monkeypatch.setenv("STREAMREC_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("STREAMREC_SASL_USERNAME", "svc")
    monkeypatch.setenv("STREAMREC_SASL_PASSWORD", "from-env")
    s = Settings()
    assert s.kafka_connection().client_kwargs()["sasl_plain_password"] == "from-env"
    assert "from-env" not in repr(s)


def test_binding_all_addresses_advertises_the_host_name():
    s = Settings(web_host="0.0.0.0")
    assert s.advertised_web_host not in ("0.0.0.0", "")
