"""Anomaly reasons and a learned anomaly score for statement lines."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from features.text import normalize_account, normalize_name

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
DUPLICATE_WINDOW = timedelta(days=15)


class AnomalyScorer(BaseEstimator):
    """An IsolationForest on line features, its score mapped to [0, 1].

    Scores above 0.5 mean the forest finds the line unusual; the mapping is
    a logistic of IsolationForest's decision function, whose sign changes
    at the fitted offset.
    """

    def __init__(self, *, n_estimators: int = 100, contamination: float = 0.01,
                 random_state: int = 0):
        self.n_estimators = n_estimators
        self.contamination = contamination
        self.random_state = random_state

    def fit(self, X) -> "AnomalyScorer":
        """Fit the forest on the features of normal traffic."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) < 10:
            raise ValueError(f"need at least 10 rows of features, got {X.shape}")
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            contamination=self.contamination,
            random_state=self.random_state,
        ).fit(X)
        return self

    def score(self, X) -> np.ndarray:
        """Return a score in [0, 1] per row."""
        check_is_fitted(self, "forest_")
        decision = self.forest_.decision_function(np.asarray(X, dtype=np.float64))
        return 1.0 / (1.0 + np.exp(40.0 * decision))


def anomaly_features(line, customer_id, typical: dict[str, float]) -> list[float]:
    """Return the features the anomaly score looks at for one line."""
    amount = float(abs(line.amount))
    log_amount = math.log10(max(amount, 0.01))
    usual = typical.get(customer_id or "", log_amount)
    return [log_amount, abs(log_amount - usual), float(amount % 100 == 0)]


@dataclass
class DuplicateTracker:
    """Remembers recent credits by payer, amount and memo."""

    seen: dict[tuple, list] = field(default_factory=lambda: defaultdict(list))

    def key(self, line) -> tuple:
        payer = normalize_account(line.counterparty_account) or normalize_name(
            line.counterparty_name
        )
        return (payer, line.amount, line.memo.strip())

    def is_repeat(self, line) -> bool:
        """Tell whether an equal credit from this payer came shortly before."""
        if line.amount <= 0:
            return False
        for earlier in self.seen.get(self.key(line), ()):
            if timedelta(0) <= line.booking_date - earlier <= DUPLICATE_WINDOW:
                return True
        return False

    def add(self, line) -> None:
        if line.amount > 0:
            self.seen[self.key(line)].append(line.booking_date)
