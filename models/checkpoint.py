"""Pickle-free checkpoints: a model's weights and counters as MessagePack.

Every model in :mod:`models` turns its state into plain data (dicts, lists, numbers,
strings) and back.  :func:`dump` wraps that state in a small envelope naming the model
kind and format version; :func:`load` checks the envelope, so loading bytes written by
another model (or garbage) fails with a clear :class:`CheckpointError`, never silently.

>>> data = dump("demo", {"counts": {"a": 1.5}})
>>> load(data, "demo")
{'counts': {'a': 1.5}}
>>> try:
...     load(data, "other")
... except CheckpointError as exc:
...     print(exc)
checkpoint holds a 'demo' model, expected 'other'
"""

from __future__ import annotations

from typing import Any

import msgspec

FORMAT_VERSION = 1

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class CheckpointError(ValueError):
    """Bytes that are not a valid checkpoint of the expected model."""


def dump(kind: str, state: Any) -> bytes:
    """Serialize ``state`` (plain data only) as a checkpoint of model ``kind``."""
    return _encoder.encode({"kind": kind, "format": FORMAT_VERSION, "state": state})


def load(data: bytes, kind: str) -> Any:
    """Return the state stored by :func:`dump`, checking that it belongs to model ``kind``."""
    try:
        envelope = _decoder.decode(data)
    except (msgspec.DecodeError, TypeError) as exc:
        raise CheckpointError(f"not a streamrec checkpoint: {exc}") from None
    if not isinstance(envelope, dict) or "kind" not in envelope or "state" not in envelope:
        raise CheckpointError("not a streamrec checkpoint: missing envelope fields")
    if envelope["kind"] != kind:
        raise CheckpointError(f"checkpoint holds a {envelope['kind']!r} model, expected {kind!r}")
    if envelope.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {envelope.get('format')!r} is not supported (expected {FORMAT_VERSION})"
        )
    return envelope["state"]
