"""The dataset formats, once: their names, how a row is read, and how it maps to event types.

``streamrec produce``, ``streamrec train --input`` and ``streamrec eval --dataset`` (and the
demo) all take ``--format`` from :data:`FORMATS` and read through :data:`FORMAT_TABLE`, so one
file always becomes the same events whichever command reads it.

Every format yields dicts in the ``events`` contract form::

    {"event_id", "user_id", "item_id", "type", "ts"[, "price"][, "session_id"]}

with ``ts`` in seconds. Dataset ids are kept as they are in the file, as strings (no prefix).
``event_id`` is deterministic, ``"{fmt}-{line_no}"`` (``"otto-{line_no}-{index}"`` for OTTO, whose
lines hold whole sessions), so replaying the same file gives the same ids. ``jsonl`` lines already
carry their own ``event_id`` and are passed through unchanged.

How each dataset's rows map to the contract's event types (this table is the reference; the
README repeats it):

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

A MovieLens rating means the film was watched; the stars say how strongly it was liked, and the
models' event weights grow in the same order (view < click < add_to_cart < purchase).

What ``streamrec eval`` excludes, per format (``Format.exclude_seen``): every format excludes what
the worker excludes (the item just touched, every purchased item; :mod:`models.exclusions`).
``movielens`` also excludes every film the user has already rated, since nobody rates a film
twice and a rated film can never be the next rating; the shop logs (``jsonl``, ``retailrocket``,
``otto``, ``taobao``) do not, since people view, cart and buy an item again there. Ties: readers
keep the file's order of events with equal ``ts`` (:func:`stream_app.data.sources.read_events`
sorts stably); the evaluation puts ties in a random order drawn from its seed for every format
(:func:`models.evaluation.prequential.shuffle_ties`), so no id order reaches a sequence model.

>>> FORMATS
('jsonl', 'movielens', 'retailrocket', 'otto', 'taobao')
>>> [f for f in FORMATS if get_format(f).exclude_seen]
['movielens']
>>> [get_format(f).event_type(raw) for f, raw in
...  [("movielens", "4.0"), ("retailrocket", "transaction"), ("otto", "carts"), ("taobao", "fav")]]
['add_to_cart', 'purchase', 'add_to_cart', 'click']
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas import EVENT_TYPES, InvalidEvent, event_from_dict

RETAILROCKET_TYPES: Mapping[str, str] = {"view": "view", "addtocart": "add_to_cart", "transaction": "purchase"}
OTTO_TYPES: Mapping[str, str] = {"clicks": "click", "carts": "add_to_cart", "orders": "purchase"}
TAOBAO_TYPES: Mapping[str, str] = {"pv": "view", "fav": "click", "cart": "add_to_cart", "buy": "purchase"}


class BadRow(Exception):
    """One row could not be converted; the message is the reason (the reader adds file and line)."""


class BadHeader(BadRow):
    """The header row is unusable, so no row of the file can be read."""


class UnknownFormat(ValueError):
    """A format name that is not one of :data:`FORMATS`; the message lists the known ones."""

    def __init__(self, fmt: str):
        super().__init__(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.fmt = fmt


def movielens_type(rating: float) -> str:
    """Map a MovieLens star rating (0.5-5.0) to an event type (see the module's table).

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


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRow(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BadRow(f"{what} {text!r} is not finite")
    return value


def _ident(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise BadRow(f"empty {what}")
    return text


def _label_mapper(table: Mapping[str, str], what: str) -> Callable[[str], str]:
    def event_type(raw: str) -> str:
        kind = raw.strip()
        if kind not in table:
            raise BadRow(f"unknown {what} {kind!r}; expected one of {sorted(table)}")
        return table[kind]

    return event_type


def _contract_type(raw: str) -> str:
    if raw not in EVENT_TYPES:
        raise BadRow(f"unknown type {raw!r}; expected one of {list(EVENT_TYPES)}")
    return raw


def _movielens_event_type(raw: str) -> str:
    return movielens_type(_number(raw, "rating"))


_retailrocket_type = _label_mapper(RETAILROCKET_TYPES, "event")
_otto_type = _label_mapper(OTTO_TYPES, "type")
_taobao_type = _label_mapper(TAOBAO_TYPES, "behavior")


def _columns(header: str, wanted: tuple[str, ...]) -> list[int]:
    names = [h.strip() for h in header.rstrip("\r\n").split(",")]
    missing = [w for w in wanted if w not in names]
    if missing:
        raise BadHeader(f"header {names} lacks column(s) {missing}; expected {list(wanted)}")
    return [names.index(w) for w in wanted]


def _split(line: str, n: int) -> list[str]:
    parts = line.rstrip("\r\n").split(",")
    if len(parts) < n:
        raise BadRow(f"expected at least {n} comma-separated fields, got {len(parts)}")
    return parts


# A row parser takes (line, line_no, state) and returns the row's events (none for a header);
# ``state`` is one dict per file, e.g. for the column positions read from the header.
RowParser = Callable[[str, int, dict[str, Any]], list[dict[str, Any]]]


def _json_row(line: str) -> Any:
    """One JSON value, or :class:`BadRow` with the reason (too deep a nesting included)."""
    try:
        return json.loads(line)
    except RecursionError:
        raise BadRow("not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise BadRow(f"not valid JSON: {exc}") from None


def _parse_jsonl(line: str, line_no: int, state: dict[str, Any]) -> list[dict[str, Any]]:
    data = _json_row(line)
    if not isinstance(data, dict):
        raise BadRow(f"expected a JSON object, got {type(data).__name__}")
    try:
        event_from_dict(data)
    except (InvalidEvent, TypeError, ValueError) as exc:
        raise BadRow(f"invalid event: {exc}") from None
    return [data]


def _parse_movielens(line: str, line_no: int, state: dict[str, Any]) -> list[dict[str, Any]]:
    if line_no == 1:
        state["cols"] = _columns(line, ("userId", "movieId", "rating", "timestamp"))
        return []
    cu, cm, cr, ct = state["cols"]
    parts = _split(line, max(state["cols"]) + 1)
    return [{
        "event_id": f"movielens-{line_no}",
        "user_id": _ident(parts[cu], "userId"),
        "item_id": _ident(parts[cm], "movieId"),
        "type": _movielens_event_type(parts[cr]),
        "ts": _number(parts[ct], "timestamp"),
    }]


def _parse_retailrocket(line: str, line_no: int, state: dict[str, Any]) -> list[dict[str, Any]]:
    if line_no == 1:
        state["cols"] = _columns(line, ("timestamp", "visitorid", "event", "itemid"))
        return []
    ct, cv, ce, ci = state["cols"]
    parts = _split(line, max(state["cols"]) + 1)
    kind = _retailrocket_type(parts[ce])
    return [{
        "event_id": f"retailrocket-{line_no}",
        "user_id": _ident(parts[cv], "visitorid"),
        "item_id": _ident(parts[ci], "itemid"),
        "type": kind,
        "ts": _number(parts[ct], "timestamp") / 1000.0,
    }]


def _parse_taobao(line: str, line_no: int, state: dict[str, Any]) -> list[dict[str, Any]]:
    if line_no == 1 and "behavior" in line.lower():
        return []  # an optional header row
    parts = _split(line, 5)
    if len(parts) != 5:
        raise BadRow(f"expected 5 fields user,item,category,behavior,ts, got {len(parts)}")
    kind = _taobao_type(parts[3])
    return [{
        "event_id": f"taobao-{line_no}",
        "user_id": _ident(parts[0], "user"),
        "item_id": _ident(parts[1], "item"),
        "type": kind,
        "ts": _number(parts[4], "timestamp"),
    }]


def _finite(x: float) -> bool:
    """Whether ``x`` is a finite float (an int too large for a float is not).

    >>> _finite(1.5), _finite(float("nan")), _finite(10 ** 400)
    (True, False, False)
    """
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def _parse_otto(line: str, line_no: int, state: dict[str, Any]) -> list[dict[str, Any]]:
    data = _json_row(line)
    if not isinstance(data, dict) or "session" not in data or not isinstance(data.get("events"), list):
        raise BadRow('expected {"session": int, "events": [...]}')
    session = str(data["session"])
    if not session:
        raise BadRow("empty session id")
    out = []
    for i, ev in enumerate(data["events"]):
        if not isinstance(ev, dict) or not {"aid", "ts", "type"} <= ev.keys():
            raise BadRow(f'event {i}: expected {{"aid", "ts", "type"}}, got {ev!r:.80}')
        try:
            kind = _otto_type(str(ev["type"]))
        except BadRow as exc:
            raise BadRow(f"event {i}: {exc}") from None
        ts = ev["ts"]
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not _finite(ts):
            raise BadRow(f"event {i}: ts {str(ts)[:40]} is not a finite number of milliseconds")
        out.append({
            "event_id": f"otto-{line_no}-{i}",
            "user_id": session,
            "item_id": _ident(str(ev["aid"]), "aid"),
            "type": kind,
            "ts": ts / 1000.0,
            "session_id": session,
        })
    return out


@dataclass(frozen=True, slots=True)
class Format:
    """One dataset format: its file, its row reader and its mapping of raw types to event types.

    ``event_type`` takes the dataset's own type field (a MovieLens rating as text, a RetailRocket
    ``event``, an OTTO ``type``, a Taobao ``behavior``, a contract ``type``) and returns the
    contract event type, or raises :class:`BadRow` for a value the format does not know.
    ``exclude_seen``: whether an offline evaluation also excludes every item the user has
    already interacted with (see the module doc).
    """

    name: str
    file: str
    parse: RowParser
    event_type: Callable[[str], str]
    exclude_seen: bool = False


FORMAT_TABLE: Mapping[str, Format] = {
    f.name: f
    for f in (
        Format("jsonl", "one contract event per line", _parse_jsonl, _contract_type),
        Format("movielens", "ratings.csv", _parse_movielens, _movielens_event_type, exclude_seen=True),
        Format("retailrocket", "events.csv", _parse_retailrocket, _retailrocket_type),
        Format("otto", "jsonl sessions", _parse_otto, _otto_type),
        Format("taobao", "UserBehavior.csv", _parse_taobao, _taobao_type),
    )
}

FORMATS: tuple[str, ...] = tuple(FORMAT_TABLE)
"""The names ``--format`` accepts, in the order help texts list them."""


def get_format(fmt: str) -> Format:
    """The :class:`Format` called ``fmt``; :class:`UnknownFormat` (a ``ValueError``) otherwise.

    >>> get_format("taobao").file
    'UserBehavior.csv'
    >>> get_format("parquet")
    Traceback (most recent call last):
    ...
    stream_app.data.formats.UnknownFormat: unknown format 'parquet'; choose one of jsonl, movielens, retailrocket, otto, taobao
    """
    try:
        return FORMAT_TABLE[fmt]
    except KeyError:
        raise UnknownFormat(fmt) from None
