"""The hyperparameters of one training run of the deep sequence model.

:class:`TrainConfig` is read by the data preparation (:mod:`models.deep.data`), the training loop
(:mod:`models.deep.train`) and stored in every artifact's manifest (:mod:`models.deep.registry`).

>>> TrainConfig(dim=8).dim, TrainConfig.from_dict({"epochs": 2}).epochs
(8, 2)
>>> TrainConfig(max_len=1)
Traceback (most recent call last):
...
ValueError: max_len must be >= 2 (one start position and one item)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (stored in the artifact manifest)."""

    dim: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    """Positions read per user (start token + last ``max_len - 1`` items); match the serving history."""
    dropout: float = 0.3
    epochs: int = 10
    """At most this many epochs (fewer when early stopping ends training)."""
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    negatives: int = 0
    """Shared uniform negatives per batch; 0 (or >= catalogue size) means the full softmax."""
    label_smoothing: float = 0.0
    window_stride: int = 10
    """Training windows end every this many items of a sequence (0 or >= max_len: no overlap)."""
    holdout_fraction: float = 0.1
    min_item_count: int = 1
    """Items seen fewer times in the training part are left out of the vocabulary."""
    collapse_repeats: bool = True
    exclude_seen: bool = True
    """Evaluation: never count an item the user already interacted with as a recommendation."""
    max_eval_users: int = 20000
    max_eval_targets: int = 10000
    """Holdout targets scored (a seeded sample when there are more)."""
    patience: int = 0
    """Early stopping: evaluate after every epoch and stop after this many epochs without a better
    holdout NDCG@10, keeping the best epoch's weights; 0 trains all ``epochs``."""
    refit_full: bool = False
    """After the holdout run, train a fresh model on every event (holdout included) for the
    best epoch count, so the served model knows the newest items; metrics stay the holdout run's."""
    seed: int = 0
    amp: bool = False
    """On CUDA, run the forward pass under bfloat16 autocast (weights and optimiser stay float32);
    ignored on CPU."""

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError("holdout_fraction must be strictly between 0 and 1")
        for name in ("dim", "layers", "heads", "epochs", "batch_size", "min_item_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_len < 2:
            raise ValueError("max_len must be >= 2 (one start position and one item)")
        if (self.negatives < 0 or self.window_stride < 0 or self.patience < 0
                or self.max_eval_targets < 1 or self.max_eval_users < 1):
            raise ValueError("negatives, window_stride and patience must be >= 0, "
                             "max_eval_targets and max_eval_users >= 1")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError("label_smoothing must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        return cls(**data)
