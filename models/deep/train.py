"""Training and holdout evaluation of the deep sequence model on a log of events.

Steps: sort events by time; split at the time quantile ``1 - holdout_fraction``: events before
the cut train the model, and *every* event after it is a holdout target, predicted from everything
its user did before it (training part and earlier holdout events) - the way the model is used
between two retrainings, and thousands of targets rather than one per user. Build per-user item
sequences (unknown/rare items skipped, consecutive repeats collapsed); cut them into windows of
``max_len`` ending every ``window_stride`` items; train with the full softmax over the catalogue
(or ``negatives`` shared uniform negatives, accidental hits masked); report holdout HR@10 and
NDCG@10 over the whole catalogue. With ``patience`` training stops once the holdout NDCG@10 has
not improved for that many epochs and keeps the best epoch; with ``refit_full`` a fresh model is
then trained on every event for that many epochs, so the served model knows the newest items.

Runs on CUDA when available, else CPU. Under ``torchrun`` (several processes) it trains with
DistributedDataParallel (NCCL on CUDA, Gloo on CPU) and a DistributedSampler; every rank
returns the same model, and :func:`main` writes the artifact from rank 0 only.

>>> from models.base import Interaction
>>> events = [Interaction(f"u{u}", f"i{(u + t) % 7}", "click", float(t * 10 + u))
...           for u in range(30) for t in range(12)]
>>> res = train(events, TrainConfig(dim=16, layers=1, heads=1, max_len=8, epochs=2,
...                                 batch_size=16, negatives=0), device="cpu", progress=False)
>>> {"hr@10", "ndcg@10"} <= set(res.metrics), len(res.epoch_seconds)
(True, 2)

Command line (plain or under torchrun)::

    python -m models.deep.train --events events.jsonl --registry models-registry
    torchrun --nproc_per_node=2 -m models.deep.train --events events.jsonl --registry models-registry
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, TensorDataset
from tqdm import tqdm

from models.base import Interaction
from models.deep.config import TrainConfig
from models.deep.data import Split, check_events, sequences, split, windows
from models.deep.holdout import evaluate
from models.deep.model import DeepRecommender, SequenceModel, Vocabulary

__all__ = ["CHECK_EVERY", "TrainConfig", "TrainResult", "check_device", "evaluate", "main", "read_jsonl_events", "train"]


@dataclass
class TrainResult:
    """A trained model with its vocabulary, metrics and timings."""

    model: SequenceModel
    vocab: Vocabulary
    config: TrainConfig
    metrics: dict[str, float]
    epoch_seconds: list[float]
    device: str
    history: list[dict[str, float]] = field(default_factory=list)
    rank: int = 0
    """Process rank under torchrun (0 otherwise); only rank 0 writes artifacts."""

    def recommender(self, version: str | None = None, exclude_history: bool = False) -> DeepRecommender:
        return DeepRecommender(self.model, self.vocab, version, collapse=self.config.collapse_repeats,
                               exclude_history=exclude_history)


class _LossModule(nn.Module):
    """The training step as one module, so DistributedDataParallel sees every use of the weights."""

    def __init__(self, model: SequenceModel, label_smoothing: float = 0.0):
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing

    def forward(self, seqs: torch.Tensor, targets: torch.Tensor, negs: torch.Tensor | None) -> torch.Tensor:
        hidden = self.model(seqs)
        keep = targets != 0
        h = hidden[keep]
        tgt = targets[keep]
        emb = self.model.item_emb.weight
        if negs is None:
            logits = h @ emb[1:].T
            return nn.functional.cross_entropy(logits, tgt - 1, label_smoothing=self.label_smoothing)
        pos = (h * emb[tgt]).sum(-1, keepdim=True)
        neg = h @ emb[negs].T
        neg = neg.masked_fill(negs.unsqueeze(0) == tgt.unsqueeze(1), float("-inf"))
        logits = torch.cat([pos, neg], dim=1)
        return nn.functional.cross_entropy(logits, torch.zeros(len(tgt), dtype=torch.long, device=h.device))


def _pick_device(device: str | None, distributed: bool) -> torch.device:
    """The training device; ``ValueError`` (with what to do) for one this machine does not have."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}: use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA GPU "
                             "here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s)")
        if distributed:
            dev = torch.device("cuda", dist.get_rank() % torch.cuda.device_count())
        elif dev.index is None:  # torch.cuda.set_device needs an index
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def check_device(device: str | None) -> torch.device:
    """The device ``train(device=...)`` would use; ``ValueError`` saying what to do if there is none.

    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown device 'tpu': use cpu, cuda or cuda:N
    """
    return _pick_device(device, distributed=False)


def train(
    events: Iterable[Interaction],
    config: TrainConfig | None = None,
    device: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a :class:`SequenceModel` on ``events`` and evaluate it on the time holdout."""
    cfg = config or TrainConfig()
    started_dist = False
    if dist.is_available() and dist.is_torchelastic_launched() and not dist.is_initialized():
        backend = "nccl" if (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        started_dist = True
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    rank = dist.get_rank() if distributed else 0
    try:
        dev = _pick_device(device, distributed)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return _train(events, cfg, dev, progress and rank == 0, distributed, rank)
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

    def epoch(self, epoch: int, epochs: int) -> tuple[float, float]:
        """Train one epoch; return (mean loss, seconds)."""
        cfg, dev, n_items = self.cfg, self.dev, self.model.n_items
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        self.model.train()
        amp = cfg.amp and dev.type == "cuda"
        full = cfg.negatives == 0 or cfg.negatives >= n_items
        t0 = time.perf_counter()
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not self.progress, leave=False)
        # the running loss stays on the device: reading it back every step would stall a GPU, so
        # it is read (and checked for NaN/inf) every CHECK_EVERY steps and at the end of the epoch
        total = torch.zeros((), device=dev)
        batches = 0
        for seqs_b, tgts in bar:
            seqs_b, tgts = seqs_b.to(dev, non_blocking=True), tgts.to(dev, non_blocking=True)
            negs = None if full else torch.randint(1, n_items + 1, (cfg.negatives,), generator=self.neg_gen).to(dev)
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
    step: nn.Module = _LossModule(model, cfg.label_smoothing)
    if distributed:
        step = nn.parallel.DistributedDataParallel(step, device_ids=[dev.index] if dev.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = TensorDataset(inputs, targets)
    sampler: DistributedSampler[Any] | RandomSampler
    if distributed:
        sampler = DistributedSampler(data, shuffle=True, seed=cfg.seed)
    else:
        sampler = RandomSampler(data, generator=torch.Generator().manual_seed(cfg.seed))
    loader = DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, drop_last=False,
                        pin_memory=dev.type == "cuda")
    neg_gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 7919 + rank)
    return _Loop(model, step, opt, loader, sampler, cfg, dev, neg_gen, progress)


_Best = tuple[float, dict[str, float], dict[str, torch.Tensor]]


def _fit(
    model: SequenceModel, seqs: Sequence[list[int]], cfg: TrainConfig, epochs: int, dev: torch.device,
    progress: bool, distributed: bool, rank: int, held: Split | None = None,
) -> tuple[list[float], list[dict[str, float]], dict[str, float] | None]:
    """Train ``model`` in place; with ``held`` and ``cfg.patience``, stop early and keep the best weights."""
    loop = _loop(model, seqs, cfg, dev, progress, distributed, rank)
    epoch_seconds: list[float] = []
    history: list[dict[str, float]] = []
    best: _Best | None = None
    for epoch in range(epochs):
        mean_loss, seconds = loop.epoch(epoch, epochs)
        epoch_seconds.append(seconds)
        row = {"epoch": float(epoch + 1), "loss": mean_loss, "seconds": seconds}
        if held is not None and cfg.patience:
            m = evaluate(model, held, cfg.exclude_seen, device=str(dev))
            row["ndcg@10"] = m["ndcg@10"]
            if best is None or m["ndcg@10"] > best[0]:
                m["best_epoch"] = float(epoch + 1)
                best = (m["ndcg@10"], m, {k: v.detach().clone() for k, v in model.state_dict().items()})
        history.append(row)
        if progress:
            tqdm.write(f"epoch {epoch + 1}: loss {row['loss']:.4f} ({seconds:.1f}s)"
                       + (f" ndcg@10 {row['ndcg@10']:.4f}" if "ndcg@10" in row else ""))
        if best is not None and epoch + 1 - int(best[1]["best_epoch"]) >= cfg.patience:
            break
    if best is None:
        return epoch_seconds, history, None
    model.load_state_dict(best[2])
    return epoch_seconds, history, best[1]


def _train(events: Iterable[Interaction], cfg: TrainConfig, dev: torch.device, progress: bool, distributed: bool,
           rank: int) -> TrainResult:
    torch.manual_seed(cfg.seed)
    evs = check_events(events)
    held = split(evs, cfg)
    if not held.train_seqs:
        raise ValueError("no user has a known item before the holdout cut")
    model = SequenceModel(len(held.vocab), cfg.dim, cfg.layers, cfg.heads, cfg.max_len, cfg.dropout).to(dev)
    epoch_seconds, history, best = _fit(model, held.train_seqs, cfg, cfg.epochs, dev, progress, distributed,
                                        rank, held)
    metrics = best if best is not None else evaluate(model, held, cfg.exclude_seen, device=str(dev))
    metrics.update({"holdout_users": float(held.holdout_users), "train_sequences": float(len(held.train_seqs)),
                    "items": float(len(held.vocab)), "events": float(held.n_events), "cutoff_ts": held.cutoff})
    vocab = held.vocab
    if cfg.refit_full:
        epochs = int(metrics.get("best_epoch", len(epoch_seconds)))
        torch.manual_seed(cfg.seed)
        vocab, seqs = sequences(evs, cfg)
        model = SequenceModel(len(vocab), cfg.dim, cfg.layers, cfg.heads, cfg.max_len, cfg.dropout).to(dev)
        more, more_hist, _ = _fit(model, [s for s in seqs.values() if s], cfg, epochs, dev, progress,
                                  distributed, rank)
        epoch_seconds += more
        history += [{**h, "refit": 1.0} for h in more_hist]
        metrics.update({"refit_epochs": float(epochs), "refit_items": float(len(vocab))})
    model = model.to("cpu").eval()
    return TrainResult(model, vocab, cfg, metrics, epoch_seconds, str(dev), history, rank)


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
    p.add_argument("--tolerance", type=float, default=0.01)
    p.add_argument("--signing-key-file", type=Path, default=None,
                   help="sign the artifact with the key in this file (workers with the same key serve only signed ones)")
    p.add_argument("--quiet", action="store_true")
    kinds: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bool": _flag}
    for f in dataclasses.fields(TrainConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kinds[str(f.type)], default=None)
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
    result = train(events, cfg, device=args.device, progress=not args.quiet)
    if result.rank != 0:
        return 0
    key = args.signing_key_file.read_bytes().strip() if args.signing_key_file else None
    version, promoted = Registry(args.registry, key).save(result, promote_if_better=not args.no_promote,
                                                     tolerance=args.tolerance)
    print(json.dumps({"version": version, "promoted": promoted, "metrics": result.metrics,
                      "epoch_seconds": result.epoch_seconds, "device": result.device}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
