"""Errors the user can fix are recognised by their type and get one line; bugs get None."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, UnknownTopicOrPartitionError

from schemas import InvalidEvent
from stream_app.broker.errors import BrokerError
from stream_app.cli.errors import UserError, user_message
from stream_app.data.formats import UnknownFormat
from stream_app.data.sources import SourceError
from stream_app.ops.evaluation import EvaluationError


@pytest.mark.parametrize(
    "exc,expected",
    [
        (UserError("only 3 events to train on"), "only 3 events to train on"),
        (FileNotFoundError("no such file: a.csv"), "no such file: a.csv"),
        (IsADirectoryError("out is a directory"), "out is a directory"),
        (SourceError(Path("r.csv"), 7, "rating 'x' is not a number"), "r.csv:7: rating 'x' is not a number"),
        (UnknownFormat("parquet"), "unknown format 'parquet'"),
        (InvalidEvent("type must be one of ..."), "invalid event: type must be one of ..."),
        (BrokerError("port 127.0.0.1:9092 is already in use\nsee the log"), "port 127.0.0.1:9092 is already in use"),
        (EvaluationError("x: only 2 events"), "x: only 2 events"),
        (UnknownTopicOrPartitionError("events"), "Kafka: "),
    ],
)
def test_user_errors_get_their_first_line(exc, expected):
    msg = user_message(exc)
    assert msg is not None and msg.startswith(expected)
    assert "\n" not in msg


@pytest.mark.parametrize("exc", [KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:9"),
                                 KafkaTimeoutError("Failed to update metadata after 60.0 secs."),
                                 KafkaConnectionError("connection refused")])
def test_an_unreachable_broker_says_how_to_start_one(exc):
    msg = user_message(exc)
    assert msg is not None and "streamrec kafka up" in msg and "STREAMREC_BROKER" in msg


def test_artifact_errors_are_user_errors():
    from models.deep.registry import ArtifactError

    assert user_message(ArtifactError("version v1 does not exist")) == "version v1 does not exist"


@pytest.mark.parametrize("exc", [KeyError("x"), TypeError("bad call"), ValueError("bootstrap"), RuntimeError("")])
def test_bugs_keep_their_traceback(exc):
    # Classified by type: a plain ValueError that merely mentions Kafka words is still a bug.
    assert user_message(exc) is None


def test_a_user_error_subclass_is_a_user_error():
    class Mine(SourceError):
        pass

    assert user_message(Mine(Path("f"), 1, "why")) == "f:1: why"


def test_an_unsupported_faust_is_one_line():
    from stream_app.worker.faust_internals import FaustVersionError

    exc = FaustVersionError("faust-streaming 0.16.0 is not supported (checked against 0.15.x): install ...")
    assert user_message(exc) == str(exc)
