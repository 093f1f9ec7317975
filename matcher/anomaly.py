"""Anomaly reasons and a learned anomaly score for statement lines.

Reasons come from a fixed list. Alerts are alarming by themselves; notes
are shown beside a line but flag nothing. The learned score is an
IsolationForest mapped to [0, 1]; its fitted trees are copied into numpy
arrays, so scoring one line costs about as little as scoring it in a batch.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from features.pairs import round_level
from features.references import TYPO

ALERTS = ("duplicate", "reference_conflict", "over_advance", "unusual_amount")
NOTES = (
    "amount_mismatch",
    "unidentified",
    "new_account",
    "unused_balance",
    "reversal",
    "unknown_type",
    "foreign_currency",
)
REASONS = ALERTS + NOTES

# Plain-word explanations of the alerts, for the reasons of a line.
ALERT_TEXTS = {
    "duplicate": "looks like a repeat of an earlier payment",
    "reference_conflict": "the memo names another order",
    "over_advance": "paid beyond the total of the orders it settles",
    "unusual_amount": "amount far above this customer's usual payments",
}

ANOMALY_FEATURES = (
    "money_in",
    "amount_log",
    "identified",
    "amount_vs_usual",
    "usual_count",
    "amount_round",
    "balance_share",
    "n_orders",
)
_SCORE_STEEPNESS = 40.0


class AnomalyScorer(BaseEstimator):
    """An IsolationForest on line features, its score mapped to [0, 1].

    Scores above 0.5 mean the forest finds the line more unusual than the
    `contamination` share of the lines it was fitted on. The mapping is a
    logistic of IsolationForest's decision function, whose sign changes at
    the fitted offset.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        contamination: float = 0.005,
        random_state: int = 0,
    ):
        self.n_estimators = n_estimators
        self.contamination = contamination
        self.random_state = random_state

    def fit(self, X) -> AnomalyScorer:
        """Fit the forest on the features of normal traffic."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) < 10:
            raise ValueError(f"need at least 10 rows of features, got {X.shape}")
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            contamination=self.contamination,
            random_state=self.random_state,
        ).fit(X)
        self.n_features_in_ = X.shape[1]
        self.offset_ = float(forest.offset_)
        self.trees_ = _FlatForest.from_forest(forest)
        return self

    def score(self, X) -> np.ndarray:
        """Return a score in [0, 1] per row."""
        # sklearn's full check costs more than scoring one line.
        if not hasattr(self, "trees_"):
            check_is_fitted(self, "trees_")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"expected {self.n_features_in_} anomaly features per row, got {X.shape}"
            )
        decision = self.trees_.score_samples(X) - self.offset_
        return 1.0 / (1.0 + np.exp(np.clip(_SCORE_STEEPNESS * decision, -50, 50)))


class _FlatForest:
    """The trees of a fitted IsolationForest as flat numpy arrays.

    Every node of every tree is in one array. A leaf points to itself on
    both sides and carries its isolation depth, so walking all trees a fixed
    number of steps lands every row on its leaves at once.
    """

    def __init__(self, feature, threshold, left, right, depth, roots, steps, norm):
        self.feature = feature
        self.threshold = threshold
        self.left = left
        self.right = right
        self.depth = depth
        self.roots = roots
        self.steps = steps
        self.norm = norm

    @classmethod
    def from_forest(cls, forest: IsolationForest) -> _FlatForest:
        parts = []
        offset = 0
        roots = []
        steps = 0
        for tree, features in zip(forest.estimators_, forest.estimators_features_):
            part = _flatten_tree(tree.tree_, np.asarray(features), offset)
            parts.append(part)
            roots.append(offset)
            offset += len(part[0])
            steps = max(steps, part[5])
        arrays = [np.concatenate([part[i] for part in parts]) for i in range(5)]
        norm = len(forest.estimators_) * _average_path_length(forest.max_samples_)
        return cls(*arrays, np.asarray(roots), steps, norm)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Return IsolationForest's score_samples: minus 2 ** (-depth / c(n))."""
        # The fitted trees compare float32 copies of the features.
        X = X.astype(np.float32).astype(np.float64)
        rows = np.arange(len(X))[:, None]
        nodes = np.broadcast_to(self.roots, (len(X), len(self.roots)))
        for _ in range(self.steps):
            values = X[rows, self.feature[nodes]]
            nodes = np.where(
                values <= self.threshold[nodes], self.left[nodes], self.right[nodes]
            )
        depths = self.depth[nodes].sum(axis=1)
        return -(2.0 ** (-depths / self.norm))


def _flatten_tree(tree, features: np.ndarray, offset: int):
    count = tree.node_count
    left = tree.children_left.astype(np.int64)
    right = tree.children_right.astype(np.int64)
    is_leaf = left == -1
    node_depth = np.zeros(count, dtype=np.int64)
    for node in range(count):
        if not is_leaf[node]:
            node_depth[left[node]] = node_depth[node] + 1
            node_depth[right[node]] = node_depth[node] + 1
    ids = np.arange(count) + offset
    flat_left = np.where(is_leaf, ids, left + offset)
    flat_right = np.where(is_leaf, ids, right + offset)
    feature = np.where(is_leaf, 0, features[np.maximum(tree.feature, 0)])
    threshold = np.where(is_leaf, np.inf, tree.threshold)
    samples = tree.n_node_samples
    depth = np.where(
        is_leaf,
        node_depth + np.array([_average_path_length(n) for n in samples]),
        0.0,
    )
    return feature, threshold, flat_left, flat_right, depth, int(node_depth.max()) + 1


def _average_path_length(samples: int) -> float:
    """Return c(n), the mean depth of an unsuccessful search in a binary tree."""
    if samples <= 1:
        return 0.0
    if samples == 2:
        return 1.0
    return (
        2.0 * (math.log(samples - 1.0) + np.euler_gamma)
        - 2.0 * (samples - 1.0) / samples
    )


def anomaly_features(index, line, chosen) -> list[float]:
    """Return the features the anomaly score looks at for one line."""
    cents = abs(int(line.amount * 100))
    amount_log = math.log10(max(cents, 1) / 100)
    cid = chosen.customer_id if chosen is not None else None
    usual, count = index.usual_amount(cid) if cid else (0.0, 0)
    balance = chosen.balance if chosen is not None and cid else 0
    return [
        float(line.amount > 0),
        amount_log,
        float(cid is not None),
        amount_log - usual if count else 0.0,
        math.log1p(count),
        round_level(cents),
        balance / max(cents, 1),
        float(len(chosen.orders)) if chosen is not None else 0.0,
    ]


def anomaly_reasons(index, context, chosen, *, currency_mismatch: bool) -> list[str]:
    """Return the alerts and notes of a line with its chosen candidate."""
    line = context.line
    reasons: list[str] = []
    if context.repeat:
        reasons.append("duplicate")
    if _names_other_order(context, chosen):
        reasons.append("reference_conflict")
    if _over_advance(index, chosen):
        reasons.append("over_advance")
    if _unusual_amount(index, context, chosen):
        reasons.append("unusual_amount")
    # Money that no order takes in full: a balance part, or no order at all.
    fits_no_order = chosen.kind in ("balance", "overpay", "none") or chosen.balance > 0
    if line.amount > 0 and fits_no_order:
        if chosen.customer_id is not None or not context.customers:
            reasons.append("amount_mismatch")
    if line.amount > 0 and not context.customers:
        reasons.append("unidentified")
    cid = chosen.customer_id
    if cid and line.counterparty_account and cid not in context.account_customers:
        reasons.append("new_account")
    if cid and _balance_unused(index, cid, line.booking_date):
        reasons.append("unused_balance")
    if line.is_reversal:
        reasons.append("reversal")
    if line.unknown_type:
        reasons.append("unknown_type")
    if currency_mismatch:
        reasons.append("foreign_currency")
    return reasons


def _names_other_order(context, chosen) -> bool:
    """Tell whether the memo names an open order and nothing backs the choice.

    A memo that is one typo away from a chosen order backs it, so a
    misspelt number that happens to spell another order is no conflict.
    """
    strong = {oid for oid, s in context.referenced_orders.items() if s > TYPO}
    chosen_ids = set(chosen.order_ids)
    if not strong or strong & chosen_ids:
        return False
    return not any(context.support_of(oid) for oid in chosen_ids)


def _over_advance(index, chosen) -> bool:
    """Tell whether the line pays its orders in full and leaves money over.

    Money beyond the total of the orders it pays goes to the customer's
    prepayment balance. Only a remainder above the bank-fee limit counts, so
    rounding a payment up by a few yuan is no alert.
    """
    if chosen.customer_id is None or not chosen.orders or chosen.left_open:
        return False
    return chosen.balance > index.settings.fee_max_cents


def _unusual_amount(index, context, chosen) -> bool:
    """Tell whether a payment that settles no order dwarfs the usual ones."""
    cid = chosen.customer_id
    if cid is None or context.cents <= 0:
        return False
    usual, count = index.usual_amount(cid)
    if count < 3:
        return False
    amount_log = math.log10(context.cents / 100)
    unsettled = chosen.balance * 2 >= context.cents
    return unsettled and amount_log - usual >= math.log10(index.settings.unusual_factor)


def _balance_unused(index, cid: str, day) -> bool:
    since = index.balance_since.get(cid)
    if since is None or index.balances.get(cid, 0) <= 0:
        return False
    return (day - since).days > index.settings.unused_balance_days
