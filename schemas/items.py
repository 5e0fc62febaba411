"""The item records of the ``items`` topic (key: item_id, compacted): what a shop says about an item.

>>> it = decode_item(b'{"item_id": "i-7", "available": false, "category": "shoes", "labels": ["sale"]}', b"i-7")
>>> it.item_id, it.available, it.category, it.labels, it.price
('i-7', False, 'shoes', ('sale',), None)
>>> try:
...     decode_item(b'{"item_id": "i-7", "price": -1}', b"i-7")
... except InvalidItem as exc:
...     print(exc.kind, exc)
schema Expected `float` >= 0.0 - at `$.price`
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec

from schemas.records import Id, InvalidEvent

MAX_ITEM_BYTES = 64 * 1024
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class InvalidItem(InvalidEvent):
    """An item record that breaks the contract (``kind`` as for events: ``empty`` is not one, a
    tombstone deletes the item; ``too_large``, ``malformed_json``, ``schema``, ``bad_key``)."""


class Item(msgspec.Struct, frozen=True, gc=False):
    """One item's metadata; fields left out mean "not known" (an item is available by default)."""

    item_id: Id
    available: bool = True
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    labels: Annotated[tuple[Label, ...], msgspec.Meta(max_length=64)] = ()
    price: Annotated[float, msgspec.Meta(ge=0)] | None = None
    expires_at: float | None = None
    """Seconds since the epoch after which the item is never recommended."""
    created_at: float | None = None


_decoder = msgspec.json.Decoder(Item)


def _checked(it: Item) -> Item:
    for name in ("price", "expires_at", "created_at"):
        v = getattr(it, name)
        if v is not None and not math.isfinite(v):
            raise InvalidItem(f"`{name}` must be a finite number")
    return it


def decode_item(raw: bytes | None, key: bytes | None) -> Item | None:
    """Parse one ``items`` record; None for a tombstone (the item's metadata is removed).

    The key must be the item id (the topic is compacted by it).
    """
    if raw is None:
        if not key:
            raise InvalidItem("a tombstone needs the item id as its key", "bad_key")
        return None
    if len(raw) > MAX_ITEM_BYTES:
        raise InvalidItem(f"message of {len(raw)} bytes is over the {MAX_ITEM_BYTES}-byte limit", "too_large")
    try:
        it = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidItem(str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidItem(f"not valid UTF-8 JSON: {exc}", "malformed_json") from None
    if key is not None and key != it.item_id.encode():
        raise InvalidItem(f"the record key {key[:130]!r} is not the item_id {it.item_id!r}", "bad_key")
    return _checked(it)


def item_from_dict(data: dict[str, Any]) -> Item:
    """Validate an item given as a Python dict (producers check before sending)."""
    try:
        return _checked(msgspec.convert(data, Item))
    except msgspec.ValidationError as exc:
        raise InvalidItem(str(exc)) from None
