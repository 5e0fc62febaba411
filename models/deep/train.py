"""Training the deep sequence model to convergence, and scoring it for the promotion gate.

Steps (:func:`train`):

1. sort events by time and cut at the time quantile ``1 - holdout_fraction`` (never before the
   first event newer than ``fresh_after``, the serving model's last training event): the newest
   events are the **fresh holdout**, every event after the cut a target predicted from
   everything its user did before it (:mod:`models.deep.data`);
2. build per-user item sequences of the training part (consecutive repeats collapsed: the item
   just touched is never served; returns to earlier items are kept) and choose what was left
   automatic from the data's size (:meth:`TrainConfig.resolved`: dropout, weight decay, the
   most epochs, whether seen items are excluded);
3. **early stopping** on a per-user validation split: each user's last ``validation_items``
   items are held out; the model trains on the rest, is scored on them after every epoch
   (NDCG@10 over the whole catalogue), stops after ``patience`` epochs without improvement
   and keeps its best epoch's weights;
4. that model is scored on the fresh holdout (:func:`models.deep.gate.target_gains`): these
   are the run's ``hr@10``/``ndcg@10`` and the candidate's side of the promotion gate;
5. with ``refit_full`` (the default) a fresh model is trained on **every** event for the best
   epoch count: the model that is served, knowing the newest items;
6. the serving pool (the fewest most frequent items covering ``pool_coverage`` of the training
   interactions) and the history length (``max_len - 1``) are recorded for serving.

Training windows of ``max_len`` end every ``window_stride`` items. The loss is the full softmax
for catalogues up to ``full_softmax_max_items`` items, else a sampled softmax with logQ
correction (:mod:`models.deep.loss`).

Runs on CUDA when available (optionally under bfloat16 autocast), else CPU. Under ``torchrun``
(several processes) it trains with DistributedDataParallel (NCCL on CUDA, Gloo on CPU) and a
DistributedSampler; every rank returns the same model, and :func:`main` writes the artifact
from rank 0 only.

>>> from models.base import Interaction
>>> events = [Interaction(f"u{u}", f"i{(u + t) % 7}", "click", float(t * 10 + u))
...           for u in range(30) for t in range(12)]
>>> res = train(events, TrainConfig(dim=16, layers=1, heads=1, max_len=8, epochs=2, patience=0,
...                                 batch_size=16), device="cpu", progress=False)
>>> {"hr@10", "ndcg@10"} <= set(res.metrics), len(res.epoch_seconds), res.serving["history"]
(True, 4, 7)

Command line (plain or under torchrun)::

    python -m models.deep.train --events events.jsonl --registry models-registry
    torchrun --nproc_per_node=2 -m models.deep.train --events events.jsonl --registry models-registry
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, TensorDataset
from tqdm import tqdm

from models.base import Interaction
from models.deep.config import TrainConfig
from models.deep.data import Holdout, Targets, check_events, repeat_rate, sequences, split, validation, windows
from models.deep.device import check_device, pick_device
from models.deep.gate import MIN_USERS, target_gains
from models.deep.holdout import evaluate
from models.deep.loss import LossModule, proposal
from models.deep.model import DeepRecommender, SequenceModel, Vocabulary
from models.deep.serving import serving_plan

__all__ = ["CHECK_EVERY", "TrainConfig", "TrainResult", "check_device", "evaluate", "main", "read_jsonl_events", "train"]


@dataclass
class TrainResult:
    """A trained model with its vocabulary, metrics and timings."""

    model: SequenceModel
    vocab: Vocabulary
    config: TrainConfig
    """The configuration used, automatic fields resolved (what the manifest stores)."""
    metrics: dict[str, float]
    epoch_seconds: list[float]
    device: str
    history: list[dict[str, float]] = field(default_factory=list)
    rank: int = 0
    """Process rank under torchrun (0 otherwise); only rank 0 writes artifacts."""
    holdout: Holdout | None = None
    """The fresh holdout (item ids), on which the gate scores the serving model too."""
    holdout_gains: NDArray[np.float64] | None = None
    """The candidate's NDCG@10 on each holdout row (:func:`models.deep.gate.target_gains`)."""
    serving: dict[str, Any] = field(default_factory=dict)
    """How to serve it: ``pool_size``, ``pool_coverage``, ``coverage_target``, ``pool_curve``, ``history``."""
    data_end_ts: float | None = None
    """The newest event time the returned model was trained on."""

    def recommender(self, version: str | None = None, exclude_history: bool = False) -> DeepRecommender:
        pool = self.serving.get("pool_size")
        return DeepRecommender(self.model, self.vocab, version, collapse=self.config.collapse_repeats,
                               exclude_history=exclude_history, pool_size=int(pool) if pool else None)


def train(
    events: Iterable[Interaction],
    config: TrainConfig | None = None,
    device: str | None = None,
    progress: bool = True,
    *,
    fresh_after: float | None = None,
) -> TrainResult:
    """Train a :class:`SequenceModel` on ``events`` (see the module docstring for the steps).

    ``fresh_after``: the newest event time the serving model was trained on (its manifest's
    ``data_end_ts``); the fresh holdout then starts after it, so the gate scores both models on
    events neither has seen.
    """
    cfg = config or TrainConfig()
    started_dist = False
    if dist.is_available() and dist.is_torchelastic_launched() and not dist.is_initialized():
        backend = "nccl" if (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        started_dist = True
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    rank = dist.get_rank() if distributed else 0
    try:
        dev = pick_device(device, distributed)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return _train(events, cfg, dev, progress and rank == 0, distributed, rank, fresh_after)
    finally:
        if started_dist:
            dist.destroy_process_group()


CHECK_EVERY = 50
"""Training steps between reads of the running loss (a host-device sync on CUDA)."""


def _check_loss(mean: float, epoch: int, bar: tqdm[Any] | None) -> None:
    if not math.isfinite(mean):
        raise FloatingPointError(f"training loss became {mean} at epoch {epoch + 1}; lower lr")
    if bar is not None:
        bar.set_postfix(loss=f"{mean:.4f}")


@dataclass
class _Loop:
    """What every epoch of one :func:`_fit` call shares."""

    model: SequenceModel
    step: nn.Module
    opt: torch.optim.Optimizer
    loader: DataLoader[tuple[torch.Tensor, ...]]
    sampler: DistributedSampler[Any] | RandomSampler
    cfg: TrainConfig
    dev: torch.device
    neg_gen: torch.Generator
    progress: bool
    q: torch.Tensor | None
    """The negatives' proposal distribution (None: the full softmax)."""

    def epoch(self, epoch: int, epochs: int) -> tuple[float, float]:
        """Train one epoch; return (mean loss, seconds)."""
        cfg, dev = self.cfg, self.dev
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        self.model.train()
        amp = cfg.amp and dev.type == "cuda"
        t0 = time.perf_counter()
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not self.progress, leave=False)
        # the running loss stays on the device: reading it back every step would stall a GPU, so
        # it is read (and checked for NaN/inf) every CHECK_EVERY steps and at the end of the epoch
        total = torch.zeros((), device=dev)
        batches = 0
        n_neg = cfg.sampled_negatives()
        for seqs_b, tgts in bar:
            seqs_b, tgts = seqs_b.to(dev, non_blocking=True), tgts.to(dev, non_blocking=True)
            negs = None if self.q is None else torch.multinomial(
                self.q, n_neg, replacement=True, generator=self.neg_gen).to(dev)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = self.step(seqs_b, tgts, negs)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += loss.detach().float()
            batches += 1
            if batches % CHECK_EVERY == 0:
                _check_loss(float(total) / batches, epoch, bar)
        _check_loss(float(total) / max(batches, 1), epoch, None)
        return float(total) / max(batches, 1), time.perf_counter() - t0


def _loop(
    model: SequenceModel, seqs: Sequence[list[int]], cfg: TrainConfig, dev: torch.device, progress: bool,
    distributed: bool, rank: int,
) -> _Loop:
    """The loss step (wrapped in DistributedDataParallel when distributed), optimiser and data."""
    inputs, targets = windows(seqs, cfg.max_len, cfg.window_stride)
    q = None
    if not cfg.full_softmax(model.n_items):
        q = proposal(np.bincount(np.fromiter((j for s in seqs for j in s), np.int64),
                                 minlength=model.n_items + 1)[1:].tolist())
    step: nn.Module = LossModule(model, cfg.label_smoothing, None if q is None else q.log().to(dev))
    if distributed:
        step = nn.parallel.DistributedDataParallel(step, device_ids=[dev.index] if dev.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=_given(cfg.weight_decay))
    data = TensorDataset(inputs, targets)
    sampler: DistributedSampler[Any] | RandomSampler
    if distributed:
        sampler = DistributedSampler(data, shuffle=True, seed=cfg.seed)
    else:
        sampler = RandomSampler(data, generator=torch.Generator().manual_seed(cfg.seed))
    loader = DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, drop_last=False,
                        pin_memory=dev.type == "cuda")
    neg_gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 7919 + rank)
    return _Loop(model, step, opt, loader, sampler, cfg, dev, neg_gen, progress, q)


_T = TypeVar("_T")


def _given(value: _T | None) -> _T:
    """A field :meth:`TrainConfig.resolved` has filled in."""
    if value is None:
        raise ValueError("the training config was not resolved for the data (call TrainConfig.resolved)")
    return value


_Best = tuple[float, int, dict[str, torch.Tensor]]


def fit(
    model: SequenceModel, seqs: Sequence[list[int]], cfg: TrainConfig, epochs: int, dev: torch.device,
    progress: bool, distributed: bool, rank: int, held: Targets | None = None,
) -> tuple[list[float], list[dict[str, float]], int | None]:
    """Train ``model`` in place; with ``held`` and ``cfg.patience``, stop early and keep the best weights.

    Returns the epoch times, one row per epoch, and the best epoch (None without early stopping).
    """
    loop = _loop(model, seqs, cfg, dev, progress, distributed, rank)
    epoch_seconds: list[float] = []
    history: list[dict[str, float]] = []
    best: _Best | None = None
    for epoch in range(epochs):
        mean_loss, seconds = loop.epoch(epoch, epochs)
        epoch_seconds.append(seconds)
        row = {"epoch": float(epoch + 1), "loss": mean_loss, "seconds": seconds}
        if held is not None and cfg.patience:
            m = evaluate(model, held, _given(cfg.exclude_seen), device=str(dev))
            row["ndcg@10"] = m["ndcg@10"]
            if best is None or m["ndcg@10"] > best[0]:
                best = (m["ndcg@10"], epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
        history.append(row)
        if progress:
            tqdm.write(f"epoch {epoch + 1}: loss {row['loss']:.4f} ({seconds:.1f}s)"
                       + (f" validation ndcg@10 {row['ndcg@10']:.4f}" if "ndcg@10" in row else ""))
        if best is not None and epoch + 1 - best[1] >= cfg.patience:
            break
    if best is None:
        return epoch_seconds, history, None
    model.load_state_dict(best[2])
    return epoch_seconds, history, best[1]


def _ts(ev: Interaction) -> float:
    return ev.ts


def new_model(n_items: int, cfg: TrainConfig, dev: torch.device) -> SequenceModel:
    return SequenceModel(n_items, cfg.dim, cfg.layers, cfg.heads, cfg.max_len, _given(cfg.dropout)).to(dev)


def _train(events: Iterable[Interaction], cfg: TrainConfig, dev: torch.device, progress: bool, distributed: bool,
           rank: int, fresh_after: float | None) -> TrainResult:
    torch.manual_seed(cfg.seed)
    evs = check_events(events)
    held = split(evs, cfg, fresh_after)
    if not held.train_seqs:
        raise ValueError("no user has a known item before the holdout cut")
    cfg = cfg.resolved(sum(len(s) for s in held.train_seqs), len(held.vocab), repeat_rate(held.train_seqs))
    epochs = _given(cfg.epochs)
    fit_seqs, val = validation(held.train_users, cfg) if cfg.patience else (held.train_seqs, None)
    if val is not None and not val.eval_target:
        fit_seqs, val = held.train_seqs, None  # no user has enough items to hold any out
    model = new_model(len(held.vocab), cfg, dev)
    epoch_seconds, history, best_epoch = fit(model, fit_seqs, cfg, epochs, dev, progress, distributed, rank, val)
    holdout = held.holdout
    holdout.exclude_seen = bool(cfg.exclude_seen)
    gains = target_gains(DeepRecommender(model, held.vocab, collapse=cfg.collapse_repeats), holdout)
    metrics: dict[str, float] = {
        "hr@10": float((gains > 0).mean()) if len(gains) else math.nan,
        "ndcg@10": float(gains.mean()) if len(gains) else math.nan,
        "holdout_targets": float(len(gains)), "holdout_users": float(holdout.user_count),
        "train_sequences": float(len(held.train_seqs)), "items": float(len(held.vocab)),
        "events": float(held.n_events), "cutoff_ts": held.cutoff,
        "epochs_trained": float(len(epoch_seconds)),
        "full_softmax": float(cfg.full_softmax(len(held.vocab))),
    }
    if best_epoch is not None and val is not None:
        metrics.update({"best_epoch": float(best_epoch), "validation_targets": float(len(val.eval_target)),
                        "validation_ndcg@10": max(h["ndcg@10"] for h in history)})
    vocab, seqs, data_end = held.vocab, held.train_seqs, evs[max(0, bisect.bisect_left(evs, held.cutoff, key=_ts) - 1)].ts
    if cfg.refit_full:
        refit_epochs = best_epoch or len(epoch_seconds)
        torch.manual_seed(cfg.seed)
        vocab, by_user = sequences(evs, cfg)
        seqs = [s for s in by_user.values() if s]
        model = new_model(len(vocab), cfg, dev)
        more, more_hist, _ = fit(model, seqs, cfg, refit_epochs, dev, progress, distributed, rank)
        epoch_seconds += more
        history += [{**h, "refit": 1.0} for h in more_hist]
        metrics.update({"refit_epochs": float(refit_epochs), "refit_items": float(len(vocab))})
        data_end = evs[-1].ts
    serving = serving_plan(vocab, seqs, cfg)
    metrics["pool_size"], metrics["pool_coverage"] = float(serving["pool_size"]), serving["pool_coverage"]
    model = model.to("cpu").eval()
    return TrainResult(model, vocab, cfg, metrics, epoch_seconds, str(dev), history, rank, holdout, gains,
                       serving, data_end)


def read_jsonl_events(path: Path) -> list[Interaction]:
    """Contract events from a JSONL file; a bad line raises ``ValueError`` naming the line."""
    from schemas.records import InvalidEvent, decode_event

    out: list[Interaction] = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                ev = decode_event(line)
            except InvalidEvent as exc:
                raise ValueError(f"{path}:{lineno}: invalid event: {exc}") from None
            out.append(Interaction(ev.user_id, ev.item_id, ev.type, ev.ts))
    return out


def _flag(s: str) -> bool:
    return s.lower() in ("1", "true", "yes")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.deep.train --events FILE.jsonl --registry DIR`` (also under torchrun)."""
    from models.deep.registry import Registry

    p = argparse.ArgumentParser(prog="python -m models.deep.train", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=Path, required=True, help="JSONL file of contract events")
    p.add_argument("--registry", type=Path, required=True, help="model registry folder")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--no-promote", action="store_true", help="save without promoting")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="NDCG@10 the candidate may lose beyond the holdout's noise and still be promoted")
    p.add_argument("--gate-min-users", type=int, default=MIN_USERS,
                   help="fewest fresh-holdout users the promotion gate decides on")
    p.add_argument("--signing-key-file", type=Path, default=None,
                   help="sign the artifact with the key in this file (workers with the same key serve only signed ones)")
    p.add_argument("--quiet", action="store_true")
    kinds: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bool": _flag}
    for f in dataclasses.fields(TrainConfig):
        kind = kinds[str(f.type).removesuffix(" | None")]
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None)
    args = p.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name) is not None}
    try:
        cfg = TrainConfig(**overrides)
        check_device(args.device)  # a device this machine lacks: one line, before reading the events
        events = read_jsonl_events(args.events)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    key = args.signing_key_file.read_bytes().strip() if args.signing_key_file else None
    registry = Registry(args.registry, key)
    try:
        result = train(events, cfg, device=args.device, progress=not args.quiet, fresh_after=registry.data_end())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.rank != 0:
        return 0
    version, promoted = registry.save(result, promote_if_better=not args.no_promote, tolerance=args.tolerance,
                                      min_users=args.gate_min_users)
    print(json.dumps({"version": version, "promoted": promoted, "metrics": result.metrics,
                      "gate": registry.manifest(version).get("gate"), "epoch_seconds": result.epoch_seconds,
                      "device": result.device}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
