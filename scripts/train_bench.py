"""Time the deep model's training on each device, on the synthetic stream (no Kafka needed).

    python scripts/train_bench.py --events 300000 --devices cpu,cuda,cuda-bf16 --epochs 3 --out train.json

Every device trains the same model on the same events from the same seed; the report gives
seconds per epoch (the first epoch, with its warm-up, apart), training windows per second and
the holdout quality each run reached, so a faster device is also seen to learn as well.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from models.base import Interaction
from models.deep.data import split, windows
from models.deep.train import TrainConfig, check_device, train
from stream_app.data.synthetic import generate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--devices", default="cpu", help="comma-separated: cpu, cuda, cuda-bf16 (bfloat16 autocast)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--cpu-epochs", type=int, default=0, help="fewer epochs for the CPU run (0 = --epochs)")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    devices = [d.strip() for d in a.devices.split(",") if d.strip()]
    try:
        for d in devices:
            check_device(d.removesuffix("-bf16"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    events = [Interaction(e["user_id"], e["item_id"], e["type"], e["ts"])
              for e in generate(a.events, n_users=a.users, n_items=a.items, seed=0)]
    gen_s = time.perf_counter() - t0
    runs = []
    for d in devices:
        epochs = a.cpu_epochs if d == "cpu" and a.cpu_epochs else a.epochs
        cfg = TrainConfig(dim=a.dim, layers=a.layers, epochs=epochs, batch_size=a.batch_size,
                          amp=d.endswith("-bf16"), seed=0)
        n_windows = len(windows(split(events, cfg).train_seqs, cfg.max_len, cfg.window_stride)[0])
        t1 = time.perf_counter()
        res = train(events, cfg, device=d.removesuffix("-bf16"), progress=False)
        wall = time.perf_counter() - t1
        steady = res.epoch_seconds[1:] or res.epoch_seconds
        per_epoch = statistics.median(steady)
        runs.append({
            "device": d, "epochs": epochs, "wall_s": round(wall, 2),
            "first_epoch_s": round(res.epoch_seconds[0], 3), "epoch_s": round(per_epoch, 3),
            "windows_per_epoch": n_windows, "windows_per_s": round(n_windows / per_epoch),
            "final_loss": round(res.history[-1]["loss"], 4),
            "hr@10": round(res.metrics["hr@10"], 4), "ndcg@10": round(res.metrics["ndcg@10"], 4),
        })
        print(json.dumps(runs[-1]), flush=True)
    report = {
        "command": "python scripts/train_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "events": a.events, "generate_s": round(gen_s, 2), "runs": runs,
    }
    if a.out:
        a.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
