"""Measure the pure recommendation pipeline (observe + score, no Kafka) in events per second.

Replays a synthetic stream through :class:`stream_app.core.pipeline.Pipeline` the way the worker does:
``observe`` per event (ingest), then ``score`` per micro-batch (scorer).  Optionally profiles it.

    .venv/bin/python scripts/profile_pipeline.py --events 40000 --users 20000 --items 50000
    .venv/bin/python scripts/profile_pipeline.py --profile pyinstrument   # needs pyinstrument
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import event_from_dict
from stream_app.core.logic import to_context
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.state import UserState, apply_event
from stream_app.data.synthetic import generate


def random_deep(n_items: int, dim: int):
    """A deep model with random weights over the whole catalogue (speed only, not quality)."""
    import torch

    from models.deep.model import DeepRecommender, SequenceModel

    torch.manual_seed(0)
    model = SequenceModel(n_items, dim=dim).eval()
    return DeepRecommender(model, [f"i-{i}" for i in range(n_items)], "random")


def run(evs: list, batch_size: int, deep=None) -> tuple[float, float, float]:
    """Replay ``evs``; return (total seconds, observe seconds, score seconds).

    Also sets ``run.cpu_s``, the process CPU time of the replay: on a shared machine it is a
    steadier measure than wall time.
    """
    p = Pipeline()
    if deep is not None:
        p.install_deep(deep)
    states: dict[str, UserState] = {}
    batch: list[Pending] = []
    t_obs = t_score = 0.0
    start = time.perf_counter()
    cpu0 = time.process_time()
    for off, ev in enumerate(evs):
        t0 = time.perf_counter()
        st = states.get(ev.user_id) or UserState()
        before = to_context(ev.user_id, st)
        pp, rp = p.observe(before, ev, 0, off)
        new, _ = apply_event(st, ev, off)
        new.shown = p.live.last_shown(ev.user_id)
        states[ev.user_id] = new
        batch.append(Pending(ev, 0, off, before, to_context(ev.user_id, new), time.perf_counter(), pp, rp))
        t1 = time.perf_counter()
        t_obs += t1 - t0
        if len(batch) == batch_size:
            p.score(batch)
            batch = []
            t_score += time.perf_counter() - t1
    if batch:
        t1 = time.perf_counter()
        p.score(batch)
        t_score += time.perf_counter() - t1
    run.cpu_s = time.process_time() - cpu0  # type: ignore[attr-defined]
    return time.perf_counter() - start, t_obs, t_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--items", type=int, default=5_000)
    ap.add_argument("--batch", type=int, default=128, help="micro-batch size")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", choices=["none", "cprofile", "pyinstrument"], default="none")
    ap.add_argument("--top", type=int, default=30, help="rows of the cProfile table")
    ap.add_argument("--deep-dim", type=int, default=0, help="add a random deep model of this size (0 = none)")
    args = ap.parse_args()
    evs = [event_from_dict(e) for e in generate(args.events, n_users=args.users, n_items=args.items, seed=args.seed)]
    deep = random_deep(args.items, args.deep_dim) if args.deep_dim else None
    if args.profile == "cprofile":
        prof = cProfile.Profile()
        prof.enable()
        total, t_obs, t_score = run(evs, args.batch, deep)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    elif args.profile == "pyinstrument":
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0005)
        prof.start()
        total, t_obs, t_score = run(evs, args.batch, deep)
        prof.stop()
        print(prof.output_text(unicode=False, color=False, show_all=False))
    else:
        total, t_obs, t_score = run(evs, args.batch, deep)
    n = len(evs)
    print(
        f"events={n} users={args.users} items={args.items} batch={args.batch}: "
        f"{n / total:,.0f} events/s ({1e6 * total / n:.1f} us/event; "
        f"observe {1e6 * t_obs / n:.1f} us, score {1e6 * t_score / n:.1f} us); "
        f"by CPU time {n / run.cpu_s:,.0f} events/s"  # type: ignore[attr-defined]
    )
    cache = getattr(deep, "vectors", None)
    if cache is not None and cache.asked:
        print(f"deep user vectors: {cache.asked:,} asked, {cache.computed:,} computed "
              f"({1 - cache.computed / cache.asked:.1%} from the cache or shared within a batch)")


if __name__ == "__main__":
    main()
