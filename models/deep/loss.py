"""The training loss of the deep sequence model: full softmax, or sampled softmax with logQ correction.

A catalogue up to :attr:`~models.deep.config.TrainConfig.full_softmax_max_items` items trains
with the full softmax (every item is a negative at every position). A larger one would spend
most of each step on that ``[positions, items]`` product, so each batch shares ``negatives``
items drawn from a proposal ``q`` (item frequency to the power 0.75, so the tail is drawn too)
and every logit is corrected by ``-log q(item)``: without the correction, frequent items, drawn
as negatives far more often than uniform sampling would, are pushed down too hard and the model
under-ranks popular items. A negative equal to a row's target (an accidental hit) is masked.

>>> import torch
>>> from models.deep.model import SequenceModel
>>> _ = torch.manual_seed(0)
>>> net = SequenceModel(n_items=6, dim=8, layers=1, heads=1, max_len=4)
>>> seqs, tgts = torch.tensor([[0, 1, 2, 3]]), torch.tensor([[1, 2, 3, 4]])
>>> full = LossModule(net)(seqs, tgts, None)
>>> q = proposal([5, 4, 3, 2, 1, 1])
>>> sampled = LossModule(net, log_q=q.log())(seqs, tgts, torch.tensor([5, 6, 1]))
>>> bool(full > 0), bool(sampled > 0), round(float(q[1:].sum()), 6)
(True, True, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.deep.model import SequenceModel

PROPOSAL_POWER = 0.75
"""Negatives are drawn with probability proportional to item frequency to this power."""


def proposal(counts: Sequence[float]) -> torch.Tensor:
    """The sampling distribution over indices ``0 .. n`` (index 0, padding, has probability 0)."""
    c = torch.tensor([0.0, *counts], dtype=torch.float64).clamp_min(0.0) ** PROPOSAL_POWER
    c[1:] += 1e-6  # an item seen once still has a chance
    c[0] = 0.0
    return (c / c.sum()).float()


class LossModule(nn.Module):
    """The training step as one module, so DistributedDataParallel sees every use of the weights.

    ``forward(seqs, targets, negs)``: the mean cross-entropy over the real (non-padding) target
    positions; ``negs`` None means the full softmax, else the shared sampled negatives (indices)
    whose logits, and the target's, are corrected by ``log_q``.
    """

    log_q: torch.Tensor

    def __init__(self, model: SequenceModel, label_smoothing: float = 0.0, log_q: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing
        self.register_buffer("log_q", log_q if log_q is not None else torch.zeros(model.n_items + 1),
                             persistent=False)

    def forward(self, seqs: torch.Tensor, targets: torch.Tensor, negs: torch.Tensor | None) -> torch.Tensor:
        hidden = self.model(seqs)
        keep = targets != 0
        h = hidden[keep]
        tgt = targets[keep]
        emb = self.model.item_emb.weight
        if negs is None:
            logits = h @ emb[1:].T
            return nn.functional.cross_entropy(logits, tgt - 1, label_smoothing=self.label_smoothing)
        pos = (h * emb[tgt]).sum(-1, keepdim=True) - self.log_q[tgt].unsqueeze(1)
        neg = h @ emb[negs].T - self.log_q[negs].unsqueeze(0)
        neg = neg.masked_fill(negs.unsqueeze(0) == tgt.unsqueeze(1), float("-inf"))
        logits = torch.cat([pos, neg], dim=1)
        return nn.functional.cross_entropy(logits, torch.zeros(len(tgt), dtype=torch.long, device=h.device))
