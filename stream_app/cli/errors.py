"""Which errors the user can fix, and their one-line messages (printed instead of a traceback).

Errors are told apart by their type. A class whose module is heavy to import (kafka, torch
through the model registry, the broker package) is only looked at when that module is already
loaded: an exception of a class can only exist once the class's module has been imported, so
the check costs nothing on the fast paths and never imports torch just to print a message.

>>> user_message(UserError("only 3 events to train on; produce some first"))
'only 3 events to train on; produce some first'
>>> user_message(FileNotFoundError("no such file: x.csv"))
'no such file: x.csv'
>>> user_message(KeyError("a bug")) is None
True
"""

from __future__ import annotations

import sys

UNREACHABLE_HINT = "start the local one with `streamrec kafka up`"


class UserError(Exception):
    """An error the user can fix; the CLI prints its first line and exits with status 1."""


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _kafka_message(exc: BaseException) -> str | None:
    """kafka-python's and aiokafka's errors (only if those libraries are loaded)."""
    if "kafka.errors" in sys.modules:
        import kafka.errors as kerr

        unreachable: tuple[type[BaseException], ...] = (kerr.KafkaTimeoutError, kerr.KafkaConnectionError,
                                                        kerr.NodeNotReadyError)
        no_brokers = getattr(kerr, "NoBrokersAvailable", None)  # kafka-python 2.x; 3.x times out instead
        if isinstance(no_brokers, type):
            unreachable += (no_brokers,)
        if isinstance(exc, unreachable):
            return f"cannot reach Kafka at STREAMREC_BROKER ({_first_line(exc)}); {UNREACHABLE_HINT}"
        if isinstance(exc, kerr.KafkaError):
            return f"Kafka: {_first_line(exc)}"
    if "aiokafka.errors" in sys.modules:
        import aiokafka.errors as aerr

        if isinstance(exc, aerr.KafkaConnectionError):
            return f"cannot reach Kafka at STREAMREC_BROKER ({_first_line(exc)}); {UNREACHABLE_HINT}"
        if isinstance(exc, aerr.KafkaError):
            return f"Kafka: {_first_line(exc)}"
    return None


LOADED_ONLY = (
    ("stream_app.broker.errors", "BrokerError"),
    ("stream_app.worker.faust_internals", "FaustVersionError"),
    ("stream_app.ops.evaluation", "EvaluationError"),
    ("models.deep.registry", "ArtifactError"),
    ("models.filters.rules", "RulesError"),
    ("stream_app.core.experiments", "ExperimentError"),
)
"""User-facing error classes of modules too heavy to import just to print a message: an exception
of one of them can only exist once its module is loaded, so they are checked only then."""


def user_message(exc: BaseException) -> str | None:
    """The readable message for ``exc``, or None when it is a bug that deserves its traceback."""
    from stream_app.data.formats import UnknownFormat
    from stream_app.data.sources import SourceError

    if isinstance(exc, UserError | SourceError | UnknownFormat):
        return _first_line(exc)
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        return _first_line(exc)
    kafka_msg = _kafka_message(exc)
    if kafka_msg is not None:
        return kafka_msg
    if "schemas.items" in sys.modules:
        from schemas.items import InvalidItem

        if isinstance(exc, InvalidItem):
            return f"invalid item: {_first_line(exc)}"
    if "schemas.records" in sys.modules:
        from schemas import InvalidEvent

        if isinstance(exc, InvalidEvent):
            return f"invalid event: {_first_line(exc)}"
    for module, name in LOADED_ONLY:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return _first_line(exc)
    return None
