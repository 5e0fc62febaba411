"""Replication settings: auto on one broker and on three, explicit values checked, the worker's view."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream_app.broker.errors import BrokerError
from stream_app.broker.topics import TooFewBrokers, resolve_replication
from stream_app.settings import Settings
from stream_app.worker.app import topic_replication
from stream_app.worker.run import with_replication


@pytest.mark.parametrize("brokers,expected", [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (6, (3, 2))])
def test_auto_follows_the_cluster(brokers, expected):
    assert resolve_replication(None, None, brokers) == expected


def test_explicit_values_are_kept_or_refused():
    assert resolve_replication(2, None, 3) == (2, 1)
    assert resolve_replication(3, 3, 3) == (3, 3)
    assert resolve_replication(None, 1, 3) == (3, 1)
    with pytest.raises(TooFewBrokers, match="STREAMREC_TOPIC_REPLICATION_FACTOR"):
        resolve_replication(3, None, 1)
    with pytest.raises(BrokerError, match="STREAMREC_MIN_INSYNC_REPLICAS"):
        resolve_replication(None, 2, 1)
    with pytest.raises(BrokerError, match=r"min\.insync\.replicas 4"):
        resolve_replication(3, 4, 3)


def test_settings_read_auto_and_numbers(monkeypatch):
    s = Settings(_env_file=None)
    assert (s.topic_replication_factor, s.min_insync_replicas) == ("auto", "auto")
    assert s.topic_replication() == (None, None)
    monkeypatch.setenv("STREAMREC_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("STREAMREC_MIN_INSYNC_REPLICAS", "Auto")
    s = Settings()
    assert s.topic_replication() == (3, None) and s.min_insync_replicas == "auto"


@pytest.mark.parametrize("value", ["0", "-1", "three", "2.5", "33", ""])
def test_bad_replication_settings_are_refused(value):
    with pytest.raises(ValidationError, match="auto or a whole number"):
        Settings(topic_replication_factor=value)
    with pytest.raises(ValidationError, match="auto or a whole number"):
        Settings(min_insync_replicas=value)


def test_the_worker_resolves_auto_against_the_cluster():
    three = with_replication(Settings(), 3)
    assert (three.topic_replication_factor, three.min_insync_replicas) == (3, 2)
    assert topic_replication(three) == (3, 2)
    assert topic_replication(with_replication(Settings(), 1)) == (1, 1)
    assert topic_replication(Settings()) == (1, 1)  # unresolved auto: a single broker
    assert topic_replication(Settings(topic_replication_factor=3, min_insync_replicas=3)) == (3, 3)
    with pytest.raises(BrokerError):
        with_replication(Settings(min_insync_replicas=3), 1)


def test_the_faust_app_and_changelog_get_the_replication():
    from stream_app.core.metrics import WorkerMetrics
    from stream_app.worker.app import create_app
    from stream_app.worker.tables import declare_user_state

    s = with_replication(Settings(app_id="repl-test"), 3)
    app = create_app(s, WorkerMetrics())
    assert app.conf.topic_replication_factor == 3
    table = declare_user_state(app, s)
    changelog = table.changelog_topic
    assert changelog.replicas in (None, 3)  # None: Faust uses the app's factor when it creates the topic
    assert dict(changelog.config or {})["min.insync.replicas"] == "2"
