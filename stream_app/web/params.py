"""Parameters of the request endpoints, checked: a wrong one raises :class:`BadRequest` with the reason.

The views answer a :class:`BadRequest` with ``400 {"error": reason}``; nothing a caller sends
reaches the ranker unchecked.

>>> q = parse_list_query({"fresh": "true", "n": "5", "exclude": "i-1,,i-2", "explain": "true"}, default_n=10)
>>> q.fresh, q.n, sorted(q.exclude), q.category, q.explain
(True, 5, ['i-1', 'i-2'], None, True)
>>> parse_list_query({}, default_n=10)
ListQuery(fresh=False, n=10, exclude=frozenset(), category=None, explain=False)
>>> parse_list_query({"n": "500", "fresh": "1"}, default_n=10)
Traceback (most recent call last):
...
stream_app.web.params.BadRequest: n must be an integer from 1 to 100, got '500'
>>> parse_session(b'{"items": ["a", "b"], "n": 3, "category": "shoes"}', default_n=10)
Session(items=('a', 'b'), n=3, exclude=frozenset(), category='shoes', explain=False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

MAX_N = 100
"""The longest list on request (the ``recommendations`` schema's bound)."""
MAX_ID_CHARS = 128
"""The contract's bound on user and item ids."""
MAX_CATEGORY_CHARS = 128
"""The item schema's bound on a category."""
MAX_EXCLUDE = 1000
MAX_SESSION_ITEMS = 500
MAX_BODY_BYTES = 64 * 1024
CATEGORY_NEEDS_CATALOGUE = ("category filters need the item catalogue (the items topic), which holds no item "
                            "yet; produce item records or drop the category parameter")
_ALWAYS_ALLOWED = frozenset({"token"})  # the dashboard's way of passing the bearer token


class BadRequest(ValueError):
    """A parameter of a request is wrong; the message says which and why (one line)."""


class ListQuery(NamedTuple):
    fresh: bool
    n: int
    exclude: frozenset[str]
    category: str | None = None
    explain: bool = False


class Session(NamedTuple):
    items: tuple[str, ...]
    n: int
    exclude: frozenset[str]
    category: str | None = None
    explain: bool = False


class Similar(NamedTuple):
    n: int
    category: str | None = None
    explain: bool = False


def require_catalogue(category: str | None, catalogued: int) -> None:
    """A category filter over an empty catalogue would always answer an empty list: refuse it."""
    if category is not None and catalogued == 0:
        raise BadRequest(CATEGORY_NEEDS_CATALOGUE)


def check_category(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CATEGORY_CHARS:
        raise BadRequest(f"category must be text of 1 to {MAX_CATEGORY_CHARS} characters, got {value!r}")
    return value


def _known(query: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    for name in query:
        if name not in allowed and name not in _ALWAYS_ALLOWED:
            raise BadRequest(f"unknown parameter {name!r}; expected {', '.join(allowed)}")


def check_id(value: Any, what: str) -> str:
    """A user or item id as the contract has them: non-empty text of at most 128 characters."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_CHARS:
        raise BadRequest(f"{what} is longer than {MAX_ID_CHARS} characters")
    return value


def parse_n(raw: Any, default_n: int) -> int:
    """``n``: an integer from 1 to :data:`MAX_N` (``default_n`` when absent)."""
    if raw is None:
        return min(default_n, MAX_N)
    if isinstance(raw, bool):
        raise BadRequest(f"n must be an integer from 1 to {MAX_N}, got {raw!r}")
    if isinstance(raw, str):
        text = raw.strip()
        n = int(text) if text.isascii() and text.isdigit() else None
    else:
        n = raw if isinstance(raw, int) else None
    if n is None or not 1 <= n <= MAX_N:
        raise BadRequest(f"n must be an integer from 1 to {MAX_N}, got {raw!r}")
    return n


def _id_set(ids: list[Any], what: str) -> frozenset[str]:
    if len(ids) > MAX_EXCLUDE:
        raise BadRequest(f"{what} lists {len(ids)} items; at most {MAX_EXCLUDE}")
    return frozenset(check_id(i, f"every item of {what}") for i in ids)


def parse_bool(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise BadRequest(f"{name} must be true or false, got {raw!r}")


def parse_list_query(query: Mapping[str, str], default_n: int) -> ListQuery:
    """``GET /users/{id}/recommendations?fresh=&n=&exclude=&category=&explain=``.

    Without ``fresh=true`` the answer is the last pushed list, which no parameter changes, so
    ``n``, ``exclude``, ``category`` or ``explain`` without it are refused rather than silently ignored.
    """
    _known(query, ("fresh", "n", "exclude", "category", "explain"))
    fresh = parse_bool(query.get("fresh", "false"), "fresh")
    if not fresh:
        given = [name for name in ("n", "exclude", "category", "explain") if name in query]
        if given:
            raise BadRequest(f"{' and '.join(given)} apply to fresh lists only (add fresh=true); "
                             "without it the answer is the last pushed list as it was sent")
    raw_ex = query.get("exclude", "")
    exclude = _id_set([x for x in (p.strip() for p in raw_ex.split(",")) if x], "exclude")
    category = check_category(query["category"]) if "category" in query else None
    return ListQuery(fresh, parse_n(query.get("n"), default_n), exclude, category,
                     parse_bool(query.get("explain", "false"), "explain"))


def parse_similar_query(query: Mapping[str, str], default_n: int) -> Similar:
    """``GET /items/{id}/similar?n=&category=&explain=``."""
    _known(query, ("n", "category", "explain"))
    category = check_category(query["category"]) if "category" in query else None
    return Similar(parse_n(query.get("n"), default_n), category, parse_bool(query.get("explain", "false"), "explain"))


def parse_session(body: bytes, default_n: int) -> Session:
    """``POST /recommend``: ``{"items": [recent ids, oldest first], "n": 10, "exclude": [...],
    "category": "...", "explain": false}``."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        doc = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest('the body must be a JSON object such as {"items": ["i-1", "i-2"], "n": 10}')
    unknown = sorted(set(doc) - {"items", "n", "exclude", "category", "explain"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; expected items, n, exclude, category, explain")
    items = doc.get("items", [])
    if not isinstance(items, list):
        raise BadRequest("items must be a list of item ids (oldest first)")
    if len(items) > MAX_SESSION_ITEMS:
        raise BadRequest(f"items lists {len(items)} ids; at most {MAX_SESSION_ITEMS}")
    exclude = doc.get("exclude", [])
    if not isinstance(exclude, list):
        raise BadRequest("exclude must be a list of item ids")
    n = doc.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise BadRequest(f"n must be an integer from 1 to {MAX_N}, got {n!r}")
    explain = doc.get("explain", False)
    if not isinstance(explain, bool):
        raise BadRequest(f"explain must be true or false, got {explain!r}")
    category = check_category(doc["category"]) if "category" in doc else None
    return Session(tuple(check_id(i, "every item of items") for i in items), parse_n(n, default_n),
                   _id_set(exclude, "exclude"), category, explain)
