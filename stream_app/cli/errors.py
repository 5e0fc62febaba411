"""One-line messages for errors a user can fix (the CLI prints these instead of a traceback)."""

from __future__ import annotations


def user_message(exc: BaseException) -> str | None:
    """The readable message for ``exc``, or None when it is a bug that deserves its traceback."""
    from kafka.errors import KafkaError, KafkaTimeoutError

    from schemas import InvalidEvent

    name = type(exc).__name__
    if isinstance(exc, KafkaTimeoutError) and "bootstrap" in str(exc).lower():
        return "cannot reach Kafka at STREAMREC_BROKER; start the local one with `streamrec kafka up`"
    if isinstance(exc, KafkaError):
        return f"Kafka: {exc}"
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return str(exc)
    if isinstance(exc, InvalidEvent):
        return f"invalid event: {exc}"
    if name in ("UserError", "BrokerError", "SourceError", "ArtifactError", "RegistryError"):
        return str(exc).splitlines()[0] if str(exc) else name
    if isinstance(exc, ValueError) and getattr(exc, "user_facing", False):
        return str(exc)
    return None
