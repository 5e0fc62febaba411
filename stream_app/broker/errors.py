"""The one exception type of the local broker module."""

from __future__ import annotations


class BrokerError(RuntimeError):
    """A local-broker problem; the message is one readable line that says what to do.

    >>> str(BrokerError("port 127.0.0.1:9092 is already in use"))
    'port 127.0.0.1:9092 is already in use'
    """
