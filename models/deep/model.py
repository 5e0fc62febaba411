"""The deep sequence model: a small SASRec-style causal self-attention encoder.

Why SASRec rather than GRU4Rec: on MovieLens-like logs causal self-attention is the stronger
next-item model in published comparisons, it trains in parallel over every position of a
sequence (no recurrence, so an epoch is a few large matrix products on CPU or GPU), and the
batched forward pass used for serving is one call for many users.

Layout of one input sequence (``max_len`` positions, right-padded with index 0)::

    [BOS, i_1, i_2, ..., i_m, PAD, PAD, ...]

``BOS`` and ``PAD`` share index 0, whose embedding is fixed at zero. A causal mask means a real
position never attends to the padding after it, so no key-padding mask is needed. The hidden
state at position ``m`` (the last real one) represents the user; at training time position
``t`` predicts item ``t + 1``, and position 0 (``BOS`` alone) learns what to recommend to a user
with no known history. Items outside the vocabulary are skipped.

Serving: :class:`DeepRecommender` scores every item for many users with one forward pass and
one matrix product (``torch.inference_mode`` on CPU). It is trained offline by
:mod:`models.deep.train`, so :meth:`DeepRecommender.learn_one` does nothing.

>>> import torch
>>> _ = torch.manual_seed(0)
>>> net = SequenceModel(n_items=4, dim=8, layers=1, heads=2, max_len=6)
>>> rec = DeepRecommender(net, Vocabulary(["a", "b", "c", "d"]), version="v1")
>>> ranked = rec.rank(UserContext("u", recent_items=("a", "b")), k=2, exclude={"c"})
>>> len(ranked), "c" in dict(ranked)
(2, False)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from itertools import chain

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from models.base import Interaction, Ranked, Recommender, UserContext
from models.deep.vectors import VectorCache

PAD = 0


class Vocabulary:
    """Item ids <-> indices; index 0 is padding, item ``items[j]`` has index ``j + 1``.

    >>> v = Vocabulary(["x", "y"])
    >>> v.encode(["y", "zzz", "x"]), len(v), v.item(1)
    ([2, 1], 2, 'x')
    """

    __slots__ = ("index", "items")

    def __init__(self, items: Iterable[str]):
        self.items: list[str] = list(items)
        self.index: dict[str, int] = {item: j + 1 for j, item in enumerate(self.items)}
        if len(self.index) != len(self.items):
            raise ValueError("vocabulary has duplicate item ids")
        for item in self.items:
            if not isinstance(item, str) or not item:
                raise ValueError(f"vocabulary item ids must be non-empty strings, got {item!r}")

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: object) -> bool:
        return item in self.index

    def item(self, index: int) -> str:
        """The item id of a (1-based) index."""
        return self.items[index - 1]

    def encode(self, seq: Iterable[str]) -> list[int]:
        """Indices of the known items of ``seq``, in order; unknown items are skipped."""
        get = self.index.get
        return [j for j in (get(x) for x in seq) if j is not None]


def collapse_repeats(seq: Sequence[int]) -> list[int]:
    """Drop consecutive repeats (``view, view, add_to_cart`` of one item count once).

    >>> collapse_repeats([1, 1, 2, 1, 1])
    [1, 2, 1]
    """
    out: list[int] = []
    for x in seq:
        if not out or out[-1] != x:
            out.append(x)
    return out


class SequenceModel(nn.Module):
    """Causal self-attention over item sequences; item embeddings are tied with the output.

    ``forward(seqs)`` maps a ``[batch, max_len]`` long tensor (layout in the module docstring) to
    hidden states ``[batch, max_len, dim]``; scores of items are dot products with
    ``item_emb.weight``.

    >>> net = SequenceModel(n_items=10, dim=8, layers=1, heads=2, max_len=5)
    >>> net(torch.zeros(3, 5, dtype=torch.long)).shape
    torch.Size([3, 5, 8])
    """

    causal: torch.Tensor
    """The causal attention mask, ``[max_len, max_len]`` (a buffer, not saved)."""

    def __init__(
        self, n_items: int, dim: int = 64, layers: int = 2, heads: int = 2,
        max_len: int = 50, dropout: float = 0.2,
    ):
        super().__init__()
        if n_items < 1:
            raise ValueError("the model needs at least one item")
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.n_items, self.dim, self.layers, self.heads, self.max_len = n_items, dim, layers, heads, max_len
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=PAD)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=dim, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.register_buffer(
            "causal", torch.triu(torch.full((max_len, max_len), float("-inf")), diagonal=1),
            persistent=False,
        )
        nn.init.normal_(self.item_emb.weight, std=dim ** -0.5)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        length = seqs.shape[1]
        pos = torch.arange(length, device=seqs.device)
        x = self.item_emb(seqs) * math.sqrt(self.dim) + self.pos_emb(pos)
        x = self.encoder(self.drop(x), mask=self.causal[:length, :length], is_causal=True)
        out: torch.Tensor = self.norm(x)
        return out

    def last_states(self, seqs: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """``forward(seqs)[row, last[row]]`` for every row, ``[batch, dim]``, for serving.

        Every layer but the last runs on all positions (the last layer attends to them); the last
        layer computes its query, attention output and feed-forward only at each row's last
        position, about a third of the work of a full pass. Eval mode only (no dropout).

        >>> net = SequenceModel(n_items=10, dim=8, layers=2, heads=2, max_len=5).eval()
        >>> seqs = torch.tensor([[0, 3, 4, 0, 0], [0, 5, 6, 7, 2]])
        >>> last = torch.tensor([2, 4])
        >>> full = net(seqs)[torch.arange(2), last]
        >>> bool(torch.allclose(net.last_states(seqs, last), full, atol=1e-5))
        True
        """
        if self.training:
            raise RuntimeError("last_states is for serving: call .eval() first")
        length = seqs.shape[1]
        pos = torch.arange(length, device=seqs.device)
        x = self.item_emb(seqs) * math.sqrt(self.dim) + self.pos_emb(pos)
        layers = self.encoder.layers
        causal = self.causal[:length, :length]
        for layer in layers[:-1]:
            x = layer(x, src_mask=causal, is_causal=True)
        top = layers[-1]
        rows = torch.arange(len(seqs), device=seqs.device)
        h = top.norm1(x)
        attn = top.self_attn
        d, nh = self.dim, attn.num_heads
        dh = d // nh
        w, b = attn.in_proj_weight, attn.in_proj_bias
        q = torch.nn.functional.linear(h[rows, last], w[:d], b[:d]).view(len(seqs), nh, 1, dh)
        kv = torch.nn.functional.linear(h, w[d:], b[d:])
        k, v = kv.view(len(seqs), length, 2, nh, dh).permute(2, 0, 3, 1, 4)
        visible = pos[None, :] <= last[:, None]  # the row's own position and those before it
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=visible[:, None, None, :])
        y = x[rows, last] + attn.out_proj(o.reshape(len(seqs), d))
        y = y + top.linear2(top.activation(top.linear1(top.norm2(y))))
        out: torch.Tensor = self.norm(y)
        return out

    def item_matrix(self) -> torch.Tensor:
        """Embeddings of the real items, ``[n_items, dim]`` (row ``j`` is index ``j + 1``)."""
        return self.item_emb.weight[1:]

    def config(self) -> dict[str, int]:
        """The shape-defining hyperparameters (what an artifact's manifest records)."""
        return {"n_items": self.n_items, "dim": self.dim, "layers": self.layers,
                "heads": self.heads, "max_len": self.max_len}


def encode_batch(
    histories: Sequence[Sequence[int]], max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[BOS, last max_len-1 items, PAD...]`` and the index of each last real position.

    >>> seqs, last = encode_batch([[5, 6, 7], [], [8]], max_len=3)
    >>> seqs.tolist(), last.tolist()
    ([[0, 6, 7], [0, 0, 0], [0, 8, 0]], [2, 0, 1])
    """
    keep = max(max_len - 1, 0)
    n = len(histories)
    tails = [hist[-keep:] if keep > 0 else () for hist in histories]
    lens = np.fromiter((len(t) for t in tails), np.int64, count=n)
    seqs = np.zeros((n, max_len), np.int64)
    if lens.any():
        cols = np.arange(max_len)[None, :]
        seqs[(cols >= 1) & (cols <= lens[:, None])] = np.fromiter(chain.from_iterable(tails), np.int64,
                                                                 count=int(lens.sum()))
    return torch.from_numpy(seqs), torch.from_numpy(lens)


def length_buckets(last: NDArray[np.int64], min_rows: int = 32) -> list[tuple[NDArray[np.int64], int]]:
    """Rows grouped so that each group is padded to its own longest history, not the batch's.

    Returns ``(rows, width)`` pairs (``width`` = positions the group needs). The split point is
    the one that saves the most padded positions, kept only when it saves more than a forward
    pass costs (about ``min_rows`` rows of the longest width); small batches stay whole.

    >>> last = np.array([1, 1, 2, 1, 19, 20, 1, 2] * 8)
    >>> [(len(rows), width) for rows, width in length_buckets(last)]
    [(48, 3), (16, 21)]
    >>> [(len(r), w) for r, w in length_buckets(np.array([3, 4, 5] * 20))]
    [(60, 6)]
    """
    n = len(last)
    width = int(last.max()) + 1 if n else 1
    if n < 2 * min_rows:
        return [(np.arange(n), width)]
    order = np.argsort(last, kind="stable")
    need = last[order] + 1  # positions each row needs, ascending
    # padded positions when rows [0, k) get need[k-1] and rows [k, n) get ``width``
    k = np.arange(1, n)
    cost = k * need[:-1] + (n - k) * width
    best = int(np.argmin(cost))
    saved = n * width - int(cost[best])
    if saved <= min_rows * width:
        return [(np.arange(n), width)]
    cut = best + 1
    return [(order[:cut], int(need[cut - 1])), (order[cut:], width)]


class DeepRecommender(Recommender):
    """Serves a trained :class:`SequenceModel`: batched scoring by dot product over all items.

    ``learn_one`` is a no-op: the model is trained offline (:func:`models.deep.train.train`) and
    replaced as a whole through :mod:`models.deep.registry`. ``predict_one`` of an item outside the
    vocabulary is ``-inf``. Excluded items are masked before the top-k, so a user always gets
    ``min(k, items not excluded)`` items. With ``exclude_history`` the items of the user's
    ``recent_items`` are excluded too (for logs where nobody returns to an item, like ratings;
    leave it off for shops, where people view the same product again).

    >>> net = SequenceModel(n_items=3, dim=4, layers=1, heads=1, max_len=4)
    >>> rec = DeepRecommender(net, Vocabulary(["a", "b", "c"]))
    >>> [len(r) for r in rec.rank_many([UserContext("u1"), UserContext("u2", ("a",))], k=5)]
    [3, 3]
    >>> no_repeat = DeepRecommender(net, Vocabulary(["a", "b", "c"]), exclude_history=True)
    >>> sorted(item for item, _ in no_repeat.rank(UserContext("u2", ("a",)), k=5))
    ['b', 'c']
    """

    name = "deep"

    def __init__(
        self, model: SequenceModel, vocab: Vocabulary | Sequence[str], version: str | None = None,
        collapse: bool = True, exclude_history: bool = False, pool_size: int | None = None,
    ):
        self.vocab = vocab if isinstance(vocab, Vocabulary) else Vocabulary(vocab)
        if len(self.vocab) != model.n_items:
            raise ValueError(f"vocabulary has {len(self.vocab)} items, model has {model.n_items}")
        if pool_size is not None and not 1 <= pool_size <= len(self.vocab):
            raise ValueError(f"pool_size must be between 1 and the {len(self.vocab)} vocabulary items, got {pool_size}")
        self.model = model.to("cpu").eval()
        self.collapse = collapse
        self.exclude_history = exclude_history
        self.pool_size = pool_size
        """The serving pool chosen at training (the most frequent items covering the configured
        share of training interactions); None when unknown (an older artifact)."""
        self._version = version
        self.vectors = VectorCache()
        """User vectors of recently seen item sequences (serving only; the weights never change here)."""

    @property
    def trained_history(self) -> int:
        """Items of a user the model reads: its ``max_len - 1`` (one position is the start token)."""
        return self.model.max_len - 1

    @property
    def version(self) -> str | None:
        return self._version

    def vocab_items(self) -> list[str]:
        """The items this model can recommend, most frequent in training first."""
        return list(self.vocab.items)

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        """Does nothing: the deep model is trained offline and swapped in as a whole."""

    def _histories(self, users: Sequence[UserContext], history: int | None = None) -> list[list[int]]:
        out = []
        for u in users:
            hist = self.vocab.encode(u.recent_items)
            if self.collapse:
                hist = collapse_repeats(hist)
            out.append(hist[-history:] if history is not None and history > 0 else hist)
        return out

    @torch.inference_mode()
    def user_vectors(self, users: Sequence[UserContext], history: int | None = None) -> torch.Tensor:
        """One forward pass: ``[len(users), dim]`` representations.

        The model reads each user's last :attr:`trained_history` known items (after collapsing
        repeats); ``history`` reads fewer (the latest ``history``), e.g. to bound serving cost.
        """
        hists = self._histories(users, history)
        if self.model.training:  # weights that change between calls: nothing to remember
            seqs, last = encode_batch(hists, self.model.max_len)
            hidden: torch.Tensor = self.model(seqs[:, : int(last.max()) + 1])
            return hidden[torch.arange(len(users)), last]
        keep = max(self.model.max_len - 1, 0)  # what encode_batch keeps of each history
        return self.vectors.vectors([tuple(h[-keep:]) if keep else () for h in hists], self._last_states)

    def _last_states(self, hists: Sequence[Sequence[int]]) -> torch.Tensor:
        """The serving vectors of ``hists``, shorter histories padded only to their own bucket's length."""
        seqs, last = encode_batch(hists, self.model.max_len)
        buckets = length_buckets(last.numpy())
        if len(buckets) == 1:
            return self.model.last_states(seqs[:, : int(last.max()) + 1], last)  # causal: trailing padding unread
        out = torch.empty((len(hists), self.model.dim))
        for rows, width in buckets:
            idx = torch.from_numpy(rows)
            out[idx] = self.model.last_states(seqs[idx, :width], last[idx])
        return out

    @torch.inference_mode()
    def score_all(self, users: Sequence[UserContext]) -> torch.Tensor:
        """Scores of every vocabulary item, ``[len(users), n_items]`` (column j is index j+1)."""
        return self.user_vectors(users) @ self.model.item_matrix().T

    @torch.inference_mode()
    def rank_many(
        self, users: Sequence[UserContext], k: int = 10,
        excludes: Sequence[Collection[str]] | None = None,
    ) -> list[Ranked]:
        if not users:
            return []
        if excludes is not None and len(excludes) != len(users):
            raise ValueError(f"{len(excludes)} exclude sets for {len(users)} users")
        if k <= 0:
            return [[] for _ in users]
        scores = self.score_all(users)
        rows: list[int] = []
        cols: list[int] = []
        get = self.vocab.index.get
        for row, ex in enumerate(excludes or ()):
            for item in ex:
                j = get(item)
                if j is not None:
                    rows.append(row)
                    cols.append(j - 1)
        if self.exclude_history:
            for row, u in enumerate(users):
                for j in self.vocab.encode(u.recent_items):
                    rows.append(row)
                    cols.append(j - 1)
        if rows:
            scores[rows, cols] = float("-inf")
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        values, indices = top.values.tolist(), top.indices.tolist()
        items = self.vocab.items
        return [
            [(items[j], v) for v, j in zip(vs, js) if v != float("-inf")]
            for vs, js in zip(values, indices)
        ]

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        return self.rank_many([user], k, [exclude])[0]

    @torch.inference_mode()
    def predict_one(self, user: UserContext, item_id: str) -> float:
        j = self.vocab.index.get(item_id)
        if j is None or (self.exclude_history and item_id in user.recent_items):
            return float("-inf")
        vec = self.user_vectors([user])[0]
        return float(vec @ self.model.item_emb.weight[j])

    @torch.inference_mode()
    def check(self, golden_users: Sequence[UserContext] = ()) -> None:
        """Raise ``ValueError`` unless every weight and every score for these users is finite.

        An empty user (no history) is always included, so the check scores at least one row.
        """
        for name, tensor in self.model.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"weight {name!r} has non-finite values")
        users = [UserContext.empty("__check__"), *golden_users]
        scores = self.score_all(users)
        bad = ~torch.isfinite(scores)
        if bool(bad.any()):
            row = int(bad.any(dim=1).nonzero()[0, 0])
            raise ValueError(
                f"non-finite scores ({int(bad.sum())} of {bad.numel()}), first for user "
                f"{users[row].user_id!r}"
            )
