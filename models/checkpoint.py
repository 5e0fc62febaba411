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

from collections.abc import Generator
from itertools import islice
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


def dump_steps(kind: str, state: Any, chunk: int = 2048) -> Generator[None, None, bytes]:
    """:func:`dump` in steps of bounded work: a generator that yields between steps and returns
    the same bytes. Large maps and arrays are encoded ``chunk`` entries at a time, so a caller
    can give its event loop a turn between steps (a checkpoint of a million items takes seconds
    in one piece). The state must not change until the generator is done.

    >>> state = {"counts": {f"i-{k}": k for k in range(10)}, "n": 3, "order": list(range(7))}
    >>> steps = dump_steps("demo", state, chunk=4)
    >>> n = 0
    >>> try:
    ...     while True:
    ...         next(steps)
    ...         n += 1
    ... except StopIteration as done:
    ...     data = done.value
    >>> data == dump("demo", state), n > 3
    (True, True)
    """
    parts: list[bytes] = []
    for part in _pieces({"kind": kind, "format": FORMAT_VERSION, "state": state}, chunk):
        parts.append(part)
        yield None
    return b"".join(parts)


_LOOK = 8
"""Entries of a map or array :func:`dump_steps` looks into to guess where its big maps are."""


def _header(n: int, small: int, code16: int, code32: int) -> bytes:
    if n < 16:
        return bytes([small | n])
    if n < 1 << 16:
        return bytes([code16]) + n.to_bytes(2, "big")
    return bytes([code32]) + n.to_bytes(4, "big")


def _body(encoded: bytes, n: int) -> bytes:
    """``encoded`` (a map or array of ``n`` entries) without its header."""
    return encoded[1 if n < 16 else 3 if n < 1 << 16 else 5:]


def _big(value: Any, chunk: int, depth: int = 4) -> bool:
    """Whether ``value`` holds more than ``chunk`` entries in one map or array (within ``depth``
    levels). Only the first few entries of a map or array are looked into: the states hold maps
    of like values, and a wrong guess makes one step longer, never the bytes different."""
    if not isinstance(value, dict | list) or depth <= 0:
        return False
    if len(value) > chunk:
        return True
    inner = value.values() if isinstance(value, dict) else value
    return any(_big(v, chunk, depth - 1) for v in islice(inner, _LOOK) if isinstance(v, dict | list))


def _pieces(obj: Any, chunk: int) -> Any:
    """The MessagePack encoding of ``obj`` in pieces of at most about ``chunk`` entries each."""
    if isinstance(obj, dict) and _big(obj, chunk):
        yield _header(len(obj), 0x80, 0xDE, 0xDF)
        if not any(_big(v, chunk) for v in islice(obj.values(), _LOOK)):  # rows: cut by C loops
            entries = iter(obj.items())
            while rows := dict(islice(entries, chunk)):
                yield _body(_encoder.encode(rows), len(rows))
            return
        batch: dict[Any, Any] = {}
        for k, v in obj.items():
            if _big(v, chunk):
                if batch:
                    yield _body(_encoder.encode(batch), len(batch))
                    batch = {}
                yield _encoder.encode(k)
                yield from _pieces(v, chunk)
                continue
            batch[k] = v
            if len(batch) >= chunk:
                yield _body(_encoder.encode(batch), len(batch))
                batch = {}
        if batch:
            yield _body(_encoder.encode(batch), len(batch))
    elif isinstance(obj, list) and len(obj) > chunk:
        yield _header(len(obj), 0x90, 0xDC, 0xDD)
        for start in range(0, len(obj), chunk):
            part = obj[start:start + chunk]
            yield _body(_encoder.encode(part), len(part))
    else:
        yield _encoder.encode(obj)


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
