"""The hyperparameters of one training run of the deep sequence model.

:class:`TrainConfig` is read by the data preparation (:mod:`models.deep.data`), the training loop
(:mod:`models.deep.train`) and stored in every artifact's manifest (:mod:`models.deep.registry`).
Fields left at ``None`` are chosen from the size of the data by :meth:`TrainConfig.resolved`
(documented there); the manifest stores the values actually used.

>>> TrainConfig(dim=8).dim, TrainConfig.from_dict({"epochs": 2}).epochs
(8, 2)
>>> TrainConfig().resolved(interactions=20_000, items=3_000, repeat_rate=0.0).epochs
100
>>> TrainConfig(max_len=1)
Traceback (most recent call last):
...
ValueError: max_len must be >= 2 (one start position and one item)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

SMALL_DATA = 100_000
"""Training interactions below which a log counts as small (stronger regularisation)."""
LARGE_DATA = 1_000_000
"""Training interactions from which a log counts as large (lighter regularisation)."""
EPOCH_BUDGET = 2_000_000
"""Automatic ``epochs``: about this many item positions are read in all, within [20, 200] epochs."""
AUTO_NEGATIVES = 1024
"""Negatives per batch of the sampled softmax when ``negatives`` is 0 and the catalogue is large."""
REPEAT_RATE_SHOP = 0.01
"""A log in which at least this share of interactions return to an item the user touched before
(not just the previous one) keeps repeats: seen items stay valid targets (``exclude_seen`` off)."""


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (the resolved values are stored in the artifact manifest)."""

    dim: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    """Positions read per user (start token + last ``max_len - 1`` items); serving encodes the same
    ``max_len - 1`` items unless ``STREAMREC_DEEP_HISTORY`` overrides it."""
    dropout: float | None = None
    """None: by data size (0.5 under 100k training interactions, 0.3 under 1M, else 0.2)."""
    epochs: int | None = None
    """The most epochs trained; early stopping usually ends sooner. None: by data size,
    ``clip(ceil(2M / interactions), 20, 200)``, so small logs get the epochs they need."""
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float | None = None
    """AdamW decoupled weight decay. None: by data size (0.1 under 100k interactions, 0.05 under
    1M, else 0.01)."""
    negatives: int = 0
    """Sampled softmax: negatives shared by one batch, drawn by item frequency, logits corrected
    by ``log q``. 0: the full softmax up to ``full_softmax_max_items`` items, else 1024 negatives."""
    full_softmax_max_items: int = 50_000
    """Catalogues up to this size train with the full softmax (when ``negatives`` is 0)."""
    label_smoothing: float = 0.0
    window_stride: int = 10
    """Training windows end every this many items of a sequence (0 or >= max_len: no overlap)."""
    holdout_fraction: float = 0.1
    """The newest share of events (by time) is the fresh holdout that scores the model for the
    promotion gate; it is never used to choose epochs."""
    validation_items: int = 1
    """Early stopping reads each user's last this many training items (users with more than
    ``validation_items + 1`` items), trained on the rest."""
    min_item_count: int = 1
    """Items seen fewer times in the training part are left out of the vocabulary."""
    collapse_repeats: bool = True
    """Drop consecutive repeats of one item (the worker never recommends the item just touched,
    so they are never a target); a return to an item seen earlier is kept."""
    exclude_seen: bool | None = None
    """Evaluation: never count an item the user already interacted with. None: on when the log
    has (almost) no returns to earlier items (rating data), off for shop data, where people come
    back to products."""
    max_eval_users: int = 20000
    max_eval_targets: int = 10000
    """Holdout targets scored (a seeded sample when there are more)."""
    patience: int = 5
    """Early stopping: stop after this many epochs without a better validation NDCG@10 and keep
    the best epoch; 0 trains all ``epochs`` (no validation)."""
    refit_full: bool = True
    """After early stopping, train a fresh model on every event for the best epoch count: that
    model is served (it knows the newest items); the holdout metrics stay the first run's."""
    pool_coverage: float = 0.95
    """The serving pool: the fewest most frequent items that cover this share of training
    interactions (recorded in the manifest; ``STREAMREC_DEEP_POOL`` overrides it)."""
    seed: int = 0
    amp: bool = False
    """On CUDA, run the forward pass under bfloat16 autocast (weights and optimiser stay float32);
    ignored on CPU."""

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError("holdout_fraction must be strictly between 0 and 1")
        for name in ("dim", "layers", "heads", "batch_size", "min_item_count", "validation_items",
                     "full_softmax_max_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be >= 1 (or None: by data size)")
        if self.max_len < 2:
            raise ValueError("max_len must be >= 2 (one start position and one item)")
        if (self.negatives < 0 or self.window_stride < 0 or self.patience < 0
                or self.max_eval_targets < 1 or self.max_eval_users < 1):
            raise ValueError("negatives, window_stride and patience must be >= 0, "
                             "max_eval_targets and max_eval_users >= 1")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError("label_smoothing must be in [0, 1)")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError("weight_decay must be >= 0")
        if not 0.0 < self.pool_coverage <= 1.0:
            raise ValueError("pool_coverage must be in (0, 1]")

    def resolved(self, interactions: int, items: int, repeat_rate: float) -> TrainConfig:
        """This config with every automatic (``None``) field chosen from the data's size.

        ``interactions``: training interactions after collapsing consecutive repeats; ``items``:
        the vocabulary size; ``repeat_rate``: the share of interactions that return to an item
        the user touched before. A stated value is always kept.
        """
        small, large = interactions < SMALL_DATA, interactions >= LARGE_DATA
        auto: dict[str, Any] = {}
        if self.dropout is None:
            auto["dropout"] = 0.5 if small else 0.2 if large else 0.3
        if self.weight_decay is None:
            auto["weight_decay"] = 0.1 if small else 0.01 if large else 0.05
        if self.epochs is None:
            auto["epochs"] = min(200, max(20, math.ceil(EPOCH_BUDGET / max(interactions, 1))))
        if self.exclude_seen is None:
            auto["exclude_seen"] = repeat_rate < REPEAT_RATE_SHOP
        return dataclasses.replace(self, **auto)

    def full_softmax(self, items: int) -> bool:
        """Whether a catalogue of ``items`` trains with the full softmax."""
        if self.negatives:
            return self.negatives >= items
        return items <= self.full_softmax_max_items

    def sampled_negatives(self) -> int:
        """Negatives per batch of the sampled softmax."""
        return self.negatives or AUTO_NEGATIVES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        return cls(**data)
