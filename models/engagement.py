"""Per-user engagement predictions learned online with River.

* :class:`PurchasePropensity` - probability that the user's next action is a purchase;
* :class:`ReturnPredictor` - probability that the user comes back within ``horizon`` seconds.

Both describe a user by a few bounded features of :class:`~models.base.UserContext` (log counts
per event type, purchase share, history length) and learn a River ``LogisticRegression``.

>>> from models.base import Interaction, UserContext
>>> pp = PurchasePropensity()
>>> for i in range(200):   # buyers with carts buy, browsers browse
...     buyer = UserContext("b", counts={"add_to_cart": 3, "view": 2})
...     pp.learn_one(buyer, Interaction("b", "i", "purchase", float(i)))
...     browser = UserContext("v", counts={"view": 9})
...     pp.learn_one(browser, Interaction("v", "i", "view", float(i)))
>>> pp.predict_one(buyer) > 0.8 > 0.2 > pp.predict_one(browser)
True
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from river import linear_model, optim

from models.base import Interaction, UserContext
from models.checkpoint import dump, load
from models.linear import set_weights, weights_of

_TYPES = ("view", "click", "add_to_cart", "purchase")


_LOG_NAMES = tuple(f"log_{t}" for t in _TYPES)
_log1p = math.log1p


def user_features(user: UserContext, gap: float | None = None) -> dict[str, float]:
    """Bounded features of a user's state; ``gap`` is the seconds between their last two events.

    Features that are zero are left out (they add nothing to a linear model's score, and a
    shorter dict makes River's updates cheaper).

    >>> user_features(UserContext("u", counts={"view": 3, "purchase": 1}, purchased=frozenset({"i"})))
    {'log_view': 1.386..., 'log_purchase': 0.693..., 'log_total': 1.609..., 'purchase_share': 0.25, 'n_purchased': 0.693...}
    """
    counts = user.counts
    x: dict[str, float] = {}
    total = 0
    if counts:
        for t, name in zip(_TYPES, _LOG_NAMES):
            c = counts.get(t)
            if c:
                x[name] = _log1p(c)
        total = sum(counts.values())
    if total:
        x["log_total"] = _log1p(total)
        buys = counts.get("purchase", 0)
        if buys:
            x["purchase_share"] = buys / total
        carts = counts.get("add_to_cart", 0)
        if carts:
            x["cart_share"] = carts / total
    else:
        x["new_user"] = 1.0
    if user.purchased:
        x["n_purchased"] = _log1p(len(user.purchased))
    if gap is not None and gap > 0:
        x["log_gap"] = _log1p(gap) / 5.0
    return x


class _UserProbability:
    kind = "engagement"

    def __init__(self, lr: float = 0.05, l2: float = 1e-4) -> None:
        self.lr, self.l2 = float(lr), float(l2)
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2, intercept_lr=lr)
        self.n_learned = 0

    def _proba(self, x: dict[str, float]) -> float:
        predict: Callable[[dict[str, float]], dict[bool, float]] = self.model.predict_proba_one  # River: untyped
        return float(predict(x)[True])

    def _fit(self, x: dict[str, float], y: bool) -> None:
        self.model.learn_one(x, y)
        self.n_learned += 1

    def _model_state(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "l2": self.l2,
            "weights": weights_of(self.model),
            "intercept": float(self.model.intercept),
            "optimizer_iterations": self.model.optimizer.n_iterations,
            "n_learned": self.n_learned,
        }

    def restore_model(self, st: dict[str, Any]) -> None:
        """Set the model's weights and counters from a checkpoint's state (see ``_model_state``)."""
        set_weights(self.model, st["weights"])
        self.model.intercept = st["intercept"]
        self.model.optimizer.n_iterations = int(st["optimizer_iterations"])
        self.n_learned = int(st["n_learned"])

    @property
    def version(self) -> int:
        return self.n_learned


class PurchasePropensity(_UserProbability):
    """P(next action is a purchase | user state); ``learn_one`` gets the state before the event."""

    kind = "purchase_propensity"

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        self._fit(user_features(user), event.type == "purchase")

    def predict_one(self, user: UserContext) -> float:
        return self._proba(user_features(user))

    def to_bytes(self) -> bytes:
        return dump(self.kind, self._model_state())

    @classmethod
    def from_bytes(cls, data: bytes) -> PurchasePropensity:
        st = load(data, cls.kind)
        m = cls(lr=st["lr"], l2=st["l2"])
        m.restore_model(st)
        return m


class ReturnPredictor(_UserProbability):
    """P(the user's next event comes within ``horizon`` seconds of their latest one).

    Each event leaves the user *pending* with the features of that moment.  The user's next
    event labels it (positive within the horizon, negative later); :meth:`expire` labels the
    users whose horizon has passed without an event, oldest first, at most ``max_items`` per
    call.  At most ``max_pending`` users wait; beyond that the oldest are dropped unlabeled.

    >>> rp = ReturnPredictor(horizon=60.0)
    >>> u = UserContext.empty("u")
    >>> rp.learn_one(u, Interaction("u", "i", "click", 0.0))
    >>> rp.expire(now=30.0), rp.expire(now=100.0)   # still waiting, then labeled negative
    (0, 1)
    """

    kind = "return_predictor"

    def __init__(self, horizon: float = 1800.0, max_pending: int = 1_000_000, lr: float = 0.05, l2: float = 1e-4):
        if not horizon > 0:
            raise ValueError(f"horizon must be > 0 seconds, got {horizon!r}")
        super().__init__(lr=lr, l2=l2)
        self.horizon = float(horizon)
        self.max_pending = int(max_pending)
        self.pending: OrderedDict[str, tuple[float, dict[str, float]]] = OrderedDict()

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        waiting = self.pending.pop(user.user_id, None)
        if waiting is not None:
            t0, x = waiting
            self._fit(x, event.ts - t0 <= self.horizon)
        gap = event.ts - user.last_ts if user.last_ts is not None else None
        self.pending[user.user_id] = (event.ts, user_features(user.after(event), gap))
        while len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)

    def expire(self, now: float, max_items: int = 1000) -> int:
        """Label as negative up to ``max_items`` users silent for more than the horizon."""
        done = 0
        while self.pending and done < max_items:
            user_id, (t0, x) = next(iter(self.pending.items()))
            if now - t0 <= self.horizon:
                break
            del self.pending[user_id]
            self._fit(x, False)
            done += 1
        return done

    def predict_one(self, user: UserContext) -> float:
        waiting = self.pending.get(user.user_id)
        return self._proba(waiting[1] if waiting is not None else user_features(user))

    def to_bytes(self) -> bytes:
        st = self._model_state()
        st.update(horizon=self.horizon, max_pending=self.max_pending,
                  pending=[[u, t, x] for u, (t, x) in self.pending.items()])  # fmt: skip
        return dump(self.kind, st)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReturnPredictor:
        st = load(data, cls.kind)
        m = cls(horizon=st["horizon"], max_pending=st["max_pending"], lr=st["lr"], l2=st["l2"])
        m.restore_model(st)
        for u, t, x in st["pending"]:
            m.pending[u] = (float(t), {str(k): float(v) for k, v in x.items()})
        return m
