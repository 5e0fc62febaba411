"""Readers that turn public interaction datasets into contract event dicts.

Every reader yields dicts in the ``events`` contract form::

    {"event_id", "user_id", "item_id", "type", "ts"[, "price"][, "session_id"]}

with ``ts`` in seconds. Dataset ids are kept as they are in the file, as strings (no prefix).
``event_id`` is deterministic, ``"{fmt}-{line_no}"`` (``"otto-{line_no}-{index}"`` for OTTO, whose
lines hold whole sessions), so replaying the same file gives the same ids. ``jsonl`` lines already
carry their own ``event_id`` and are passed through unchanged.

Formats and how their event types map to the contract:

============  =====================================  =============================================
format        file                                   type mapping
============  =====================================  =============================================
jsonl         one contract event per line            as given
movielens     ratings.csv (userId,movieId,rating,    rating >= 4.5 -> purchase, 4.0 -> add_to_cart,
              timestamp in s)                        3.0-3.5 -> click, below 3.0 -> view
retailrocket  events.csv (timestamp in ms,visitorid, view -> view, addtocart -> add_to_cart,
              event,itemid,transactionid)            transaction -> purchase
otto          jsonl sessions {"session", "events":   clicks -> click, carts -> add_to_cart,
              [{"aid","ts" in ms,"type"}]}           orders -> purchase; user_id = session_id =
                                                     the session number
taobao        UserBehavior.csv, no header            pv -> view, fav -> click, cart -> add_to_cart,
              (user,item,category,behavior,ts in s)  buy -> purchase
============  =====================================  =============================================

Bad rows: with ``errors="raise"`` (the default) the first malformed row raises
:class:`SourceError` naming the file and line. With ``errors="keep"`` a malformed row is yielded
as a :class:`Rejected` record holding the raw line bytes and the reason, in its place in the
stream, so a producer can still send it (``EventProducer.send_raw``) and let the worker
dead-letter it; nothing is dropped silently. Blank lines are skipped (they hold no data).
Files ending in ``.gz`` are read through gzip.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "UserBehavior.csv"
>>> _ = p.write_text("1,20,7,pv,1511544070\\n1,21,7,buy,1511540000\\n")
>>> [(e["event_id"], e["type"], e["ts"]) for e in read_events(p, "taobao")]
[('taobao-2', 'purchase', 1511540000.0), ('taobao-1', 'view', 1511544070.0)]
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from schemas import InvalidEvent, event_from_dict

FORMATS: tuple[str, ...] = ("jsonl", "movielens", "retailrocket", "otto", "taobao")

RETAILROCKET_TYPES: dict[str, str] = {
    "view": "view",
    "addtocart": "add_to_cart",
    "transaction": "purchase",
}
OTTO_TYPES: dict[str, str] = {"clicks": "click", "carts": "add_to_cart", "orders": "purchase"}
TAOBAO_TYPES: dict[str, str] = {
    "pv": "view",
    "fav": "click",
    "cart": "add_to_cart",
    "buy": "purchase",
}

Errors = Literal["raise", "keep"]


def movielens_type(rating: float) -> str:
    """Map a MovieLens star rating (0.5-5.0) to an event type.

    A rating means the movie was watched; the stars say how strongly it was liked, and the
    event weights of the models grow in the same order (view < click < add_to_cart < purchase).

    >>> [movielens_type(r) for r in (5.0, 4.5, 4.0, 3.5, 3.0, 2.5, 0.5)]
    ['purchase', 'purchase', 'add_to_cart', 'click', 'click', 'view', 'view']
    """
    if rating >= 4.5:
        return "purchase"
    if rating >= 4.0:
        return "add_to_cart"
    if rating >= 3.0:
        return "click"
    return "view"


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


class _BadRow(Exception):
    """Internal: one row could not be converted; carries the reason."""


class _BadHeader(_BadRow):
    """Internal: the header row is unusable, so no row of the file can be read."""


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _BadRow(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _BadRow(f"{what} {text!r} is not finite")
    return value


def _ident(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise _BadRow(f"empty {what}")
    return text


def _columns(header: str, wanted: tuple[str, ...]) -> list[int]:
    names = [h.strip() for h in header.rstrip("\r\n").split(",")]
    missing = [w for w in wanted if w not in names]
    if missing:
        raise _BadHeader(f"header {names} lacks column(s) {missing}; expected {list(wanted)}")
    return [names.index(w) for w in wanted]


def _split(line: str, n: int) -> list[str]:
    parts = line.rstrip("\r\n").split(",")
    if len(parts) < n:
        raise _BadRow(f"expected at least {n} comma-separated fields, got {len(parts)}")
    return parts


# Each row parser takes (line, line_no, state) and returns a list of event dicts.
RowParser = Callable[[str, int, dict], list[dict]]


def _parse_jsonl(line: str, line_no: int, state: dict) -> list[dict]:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise _BadRow(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRow(f"expected a JSON object, got {type(data).__name__}")
    try:
        event_from_dict(data)
    except (InvalidEvent, TypeError, ValueError) as exc:
        raise _BadRow(f"invalid event: {exc}") from None
    return [data]


def _parse_movielens(line: str, line_no: int, state: dict) -> list[dict]:
    if line_no == 1:
        state["cols"] = _columns(line, ("userId", "movieId", "rating", "timestamp"))
        return []
    cu, cm, cr, ct = state["cols"]
    parts = _split(line, max(state["cols"]) + 1)
    rating = _number(parts[cr], "rating")
    return [
        {
            "event_id": f"movielens-{line_no}",
            "user_id": _ident(parts[cu], "userId"),
            "item_id": _ident(parts[cm], "movieId"),
            "type": movielens_type(rating),
            "ts": _number(parts[ct], "timestamp"),
        }
    ]


def _parse_retailrocket(line: str, line_no: int, state: dict) -> list[dict]:
    if line_no == 1:
        state["cols"] = _columns(line, ("timestamp", "visitorid", "event", "itemid"))
        return []
    ct, cv, ce, ci = state["cols"]
    parts = _split(line, max(state["cols"]) + 1)
    kind = parts[ce].strip()
    if kind not in RETAILROCKET_TYPES:
        raise _BadRow(f"unknown event {kind!r}; expected one of {sorted(RETAILROCKET_TYPES)}")
    return [
        {
            "event_id": f"retailrocket-{line_no}",
            "user_id": _ident(parts[cv], "visitorid"),
            "item_id": _ident(parts[ci], "itemid"),
            "type": RETAILROCKET_TYPES[kind],
            "ts": _number(parts[ct], "timestamp") / 1000.0,
        }
    ]


def _parse_taobao(line: str, line_no: int, state: dict) -> list[dict]:
    if line_no == 1 and "behavior" in line.lower():
        return []  # an optional header row
    parts = _split(line, 5)
    if len(parts) != 5:
        raise _BadRow(f"expected 5 fields user,item,category,behavior,ts, got {len(parts)}")
    kind = parts[3].strip()
    if kind not in TAOBAO_TYPES:
        raise _BadRow(f"unknown behavior {kind!r}; expected one of {sorted(TAOBAO_TYPES)}")
    return [
        {
            "event_id": f"taobao-{line_no}",
            "user_id": _ident(parts[0], "user"),
            "item_id": _ident(parts[1], "item"),
            "type": TAOBAO_TYPES[kind],
            "ts": _number(parts[4], "timestamp"),
        }
    ]


def _parse_otto(line: str, line_no: int, state: dict) -> list[dict]:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise _BadRow(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "session" not in data or not isinstance(data.get("events"), list):
        raise _BadRow('expected {"session": int, "events": [...]}')
    session = str(data["session"])
    if not session:
        raise _BadRow("empty session id")
    out = []
    for i, ev in enumerate(data["events"]):
        if not isinstance(ev, dict) or not {"aid", "ts", "type"} <= ev.keys():
            raise _BadRow(f'event {i}: expected {{"aid", "ts", "type"}}, got {ev!r:.80}')
        kind = ev["type"]
        if kind not in OTTO_TYPES:
            raise _BadRow(f"event {i}: unknown type {kind!r}; expected one of {sorted(OTTO_TYPES)}")
        ts = ev["ts"]
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
            raise _BadRow(f"event {i}: ts {ts!r} is not a finite number")
        out.append(
            {
                "event_id": f"otto-{line_no}-{i}",
                "user_id": session,
                "item_id": _ident(str(ev["aid"]), "aid"),
                "type": OTTO_TYPES[kind],
                "ts": ts / 1000.0,
                "session_id": session,
            }
        )
    return out


_PARSERS: dict[str, RowParser] = {
    "jsonl": _parse_jsonl,
    "movielens": _parse_movielens,
    "retailrocket": _parse_retailrocket,
    "otto": _parse_otto,
    "taobao": _parse_taobao,
}


def _check(path: Path | str, fmt: str, errors: str) -> tuple[Path, RowParser]:
    if fmt not in _PARSERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors must be 'raise' or 'keep', got {errors!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{fmt} input file not found: {path}")
    return path, _PARSERS[fmt]


def iter_events(path: Path | str, fmt: str, *, errors: Errors = "raise") -> Iterator[dict | Rejected]:
    """Yield the events of a file in file order (not sorted), streaming; see the module doc.

    Raises ``ValueError`` for an unknown format, ``FileNotFoundError`` for a missing file
    (both before the first row is read), and :class:`SourceError` for a malformed row when
    ``errors="raise"``.
    """
    path, parse = _check(path, fmt, errors)
    return _iterate(path, parse, errors)


def _iterate(path: Path, parse: RowParser, errors: str) -> Iterator[dict | Rejected]:
    state: dict = {}
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
            except _BadRow as exc:
                if errors == "raise" or isinstance(exc, _BadHeader):
                    raise SourceError(path, line_no, str(exc)) from None
                yield Rejected(path, line_no, line.rstrip("\r\n").encode(), str(exc))


def read_events(path: Path | str, fmt: str, *, errors: Errors = "raise") -> list[dict | Rejected]:
    """Read a whole file and return its events sorted by ``ts`` (stable: ties keep file order).

    A :class:`Rejected` row (``errors="keep"``) has no usable time; it sorts with the ts of the
    valid event just before it in the file, so it stays next to its neighbours.
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


def count_types(events: list[dict | Rejected]) -> dict[str, int]:
    """Events per type (and ``"rejected"`` when any), e.g. for a replay summary.

    >>> count_types([{"type": "view"}, {"type": "view"}, {"type": "purchase"}])
    {'view': 2, 'purchase': 1}
    """
    out: dict[str, int] = {}
    for ev in events:
        key = "rejected" if isinstance(ev, Rejected) else ev["type"]
        out[key] = out.get(key, 0) + 1
    return out
