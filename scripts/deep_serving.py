"""Time the deep model's serving on the synthetic stream's real histories, per batch of users.

Replays a synthetic stream to build each event's user history (the latest 20 items), cuts it in
batches, and times with one torch thread (best of ``--repeats``):

* ``candidates``: the serving retriever's top-k over its pool (what the scorer calls per batch);
* ``transformer, whole``: the user vectors with every history padded to the batch's longest;
* ``transformer, buckets``: the same in length buckets (``models.deep.model.length_buckets``),
  when this checkout has them.

Run it from two checkouts to compare two versions (the same environment serves both):

    .venv/bin/python scripts/deep_serving.py --events 40000 --users 20000 --items 50000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--pool", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if min(args.events, args.users, args.items, args.batch, args.pool, args.repeats) < 1:
        ap.error("every count must be at least 1")

    import torch

    from models.base import UserContext
    from models.deep import model as deep_model
    from models.deep.retriever import HeadRetriever
    from stream_app.data.synthetic import generate

    sys.argv = sys.argv[:1]
    from scripts.profile_pipeline import random_deep

    torch.set_num_threads(1)
    deep = random_deep(args.items, 64)
    recent: dict[str, list[str]] = {}
    batches: list[list[UserContext]] = []
    cur: list[UserContext] = []
    for e in generate(args.events, n_users=args.users, n_items=args.items, seed=0):
        r = recent.setdefault(e["user_id"], [])
        r.append(e["item_id"])
        del r[:-20]
        cur.append(UserContext(e["user_id"], tuple(r)))
        if len(cur) == args.batch:
            batches.append(cur)
            cur = []

    def best(run) -> float:
        times = []
        for _ in range(args.repeats):
            if hasattr(deep, "vectors"):  # a fresh cache each time: every repeat sees the stream anew
                from models.deep.vectors import VectorCache
                deep.vectors = VectorCache()
            t = time.perf_counter()
            run()
            times.append((time.perf_counter() - t) / len(batches))
        return min(times) * 1000

    ret = HeadRetriever(deep, args.pool)
    hists = [deep._histories(b, 20) for b in batches]

    def whole() -> None:
        for h in hists:
            seqs, last = deep_model.encode_batch(h, deep.model.max_len)
            deep.model.last_states(seqs[:, : int(last.max()) + 1], last)

    with torch.inference_mode():
        print(f"{len(batches)} batches of {args.batch} users, pool {args.pool}, one torch thread:")
        print(f"  candidates (k=50)      {best(lambda: [ret.candidates(b, 50) for b in batches]):6.2f} ms per batch")
        print(f"  transformer, whole     {best(whole):6.2f} ms per batch")
        if hasattr(deep_model, "length_buckets"):
            print(f"  transformer, buckets   {best(lambda: [deep._last_states(h) for h in hists]):6.2f} ms per batch")


if __name__ == "__main__":
    main()
