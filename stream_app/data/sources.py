"""Reading a dataset file into contract event dicts, in any of the formats of :mod:`.formats`.

What each format's rows become (ids, times, event types) is described once, in
:mod:`stream_app.data.formats`; this module opens the file, walks its lines and deals with bad rows.

Bad rows: with ``errors="raise"`` (the default) the first malformed row raises
:class:`SourceError` naming the file and line. With ``errors="keep"`` a malformed row is yielded
as a :class:`Rejected` record holding the raw line bytes and the reason, in its place in the
stream, so a producer can still send it (``EventProducer.send_raw``) and let the worker
dead-letter it; nothing is dropped silently. An unusable header raises in both modes (no row of
the file could be read). Blank lines are skipped (they hold no data). Files ending in ``.gz`` are
read through gzip.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "UserBehavior.csv"
>>> _ = p.write_text("1,20,7,pv,1511544070\\n1,21,7,buy,1511540000\\n")
>>> [(e["event_id"], e["type"], e["ts"]) for e in read_events(p, "taobao")]
[('taobao-2', 'purchase', 1511540000.0), ('taobao-1', 'view', 1511544070.0)]
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, overload

from stream_app.data.formats import (
    FORMATS,
    OTTO_TYPES,
    RETAILROCKET_TYPES,
    TAOBAO_TYPES,
    BadHeader,
    BadRow,
    RowParser,
    UnknownFormat,
    get_format,
    movielens_type,
)

__all__ = [
    "FORMATS",
    "OTTO_TYPES",
    "RETAILROCKET_TYPES",
    "TAOBAO_TYPES",
    "Errors",
    "Rejected",
    "SourceError",
    "UnknownFormat",
    "count_types",
    "iter_events",
    "movielens_type",
    "read_events",
]

Errors = Literal["raise", "keep"]


class SourceError(ValueError):
    """A malformed row of an input file; the message names the file and the line."""

    def __init__(self, path: Path, line_no: int, reason: str):
        super().__init__(f"{path}:{line_no}: {reason}")
        self.path = path
        self.line_no = line_no
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that is not a valid event, kept (``errors="keep"``) so it can still be sent raw."""

    path: Path
    line_no: int
    raw: bytes
    reason: str


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _check(path: Path | str, fmt: str, errors: str) -> tuple[Path, RowParser]:
    parse = get_format(fmt).parse  # UnknownFormat names the known formats
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors must be 'raise' or 'keep', got {errors!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{fmt} input file not found: {path}")
    return path, parse


@overload
def iter_events(path: Path | str, fmt: str, *, errors: Literal["raise"] = "raise") -> Iterator[dict[str, Any]]: ...
@overload
def iter_events(path: Path | str, fmt: str, *, errors: Errors) -> Iterator[dict[str, Any] | Rejected]: ...


def iter_events(path: Path | str, fmt: str, *, errors: Errors = "raise") -> Iterator[dict[str, Any] | Rejected]:
    """Yield the events of a file in file order (not sorted), streaming; see the module doc.

    Raises :class:`~stream_app.data.formats.UnknownFormat` (a ``ValueError``) for an unknown
    format, ``FileNotFoundError`` for a missing file (both before the first row is read), and
    :class:`SourceError` for a malformed row when ``errors="raise"``.
    """
    checked, parse = _check(path, fmt, errors)
    return _iterate(checked, parse, errors)


def _iterate(path: Path, parse: RowParser, errors: str) -> Iterator[dict[str, Any] | Rejected]:
    state: dict[str, Any] = {}
    with _open(path) as fh:
        line_no = 0
        while True:
            try:
                line = fh.readline()
            except UnicodeDecodeError as exc:
                raise SourceError(path, line_no + 1, f"not UTF-8 text: {exc}") from None
            if not line:
                return
            line_no += 1
            if not line.strip():
                continue
            try:
                yield from parse(line, line_no, state)
            except BadRow as exc:
                if errors == "raise" or isinstance(exc, BadHeader):
                    raise SourceError(path, line_no, str(exc)) from None
                yield Rejected(path, line_no, line.rstrip("\r\n").encode(), str(exc))


@overload
def read_events(path: Path | str, fmt: str, *, errors: Literal["raise"] = "raise") -> list[dict[str, Any]]: ...
@overload
def read_events(path: Path | str, fmt: str, *, errors: Errors) -> list[dict[str, Any] | Rejected]: ...


def read_events(path: Path | str, fmt: str, *, errors: Errors = "raise") -> list[Any]:
    """Read a whole file and return its events sorted by ``ts`` (stable: ties keep file order).

    A :class:`Rejected` row (``errors="keep"``) has no usable time; it sorts with the ts of the
    valid event just before it in the file, so it stays next to its neighbours. The whole file is
    held in memory; :func:`stream_app.data.ordering.time_ordered` streams the same sequence with
    memory bounded by a chunk size (what ``streamrec produce`` and the demo replay).
    """
    items = list(iter_events(path, fmt, errors=errors))
    keys = []
    last = -math.inf
    for item in items:
        if not isinstance(item, Rejected):
            last = item["ts"]
        keys.append(last)
    order = sorted(range(len(items)), key=keys.__getitem__)
    return [items[i] for i in order]


def count_types(events: Iterable[dict[str, Any] | Rejected]) -> dict[str, int]:
    """Events per type (and ``"rejected"`` when any), e.g. for a replay summary.

    >>> count_types([{"type": "view"}, {"type": "view"}, {"type": "purchase"}])
    {'view': 2, 'purchase': 1}
    """
    out: dict[str, int] = {}
    for ev in events:
        key = "rejected" if isinstance(ev, Rejected) else ev["type"]
        out[key] = out.get(key, 0) + 1
    return out
