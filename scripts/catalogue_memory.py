"""Measure the memory the item catalogue takes per item (what every worker holds whole).

Loads N items into :class:`models.filters.catalogue.ItemCatalogue` the way the catalogue reader
does (one parsed :class:`schemas.items.Item` per record, dropped after the update), and reports
the bytes still allocated per item, measured with ``tracemalloc``: the id strings, the id index,
the arrays, the category table and the labels.

    .venv/bin/python scripts/catalogue_memory.py --items 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.filters.catalogue import ItemCatalogue
from schemas.items import Item


def measure(n: int, labelled: float, seed: int = 0) -> dict[str, float]:
    """Bytes per item of a catalogue of ``n`` items, a ``labelled`` share of them with two labels."""
    rng = random.Random(seed)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    items = [Item(f"item-{k:08d}", available=rng.random() > 0.05, category=f"cat-{rng.randrange(500)}",
                  labels=("sale", f"brand-{rng.randrange(200)}") if rng.random() < labelled else (),
                  price=round(rng.uniform(1, 500), 2), expires_at=None, created_at=1.7e9 + k)
             for k in range(n)]
    cat = ItemCatalogue()
    for it in items:
        cat.update(it)
    del items, it  # what is left is the catalogue, item id strings included
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(cat) == n
    return {"items": n, "labelled_share": labelled, "bytes_per_item": round((after - before) / n, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", default="10000,100000,1000000")
    ap.add_argument("--labelled", type=float, default=0.3, help="share of items with two labels")
    args = ap.parse_args()
    for n in (int(x) for x in args.items.split(",")):
        for share in (0.0, args.labelled):
            print(json.dumps(measure(n, share)))


if __name__ == "__main__":
    main()
