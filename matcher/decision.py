"""Calibrated confidence and the decision policy: auto, review or unmatched."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from features.pairs import FEATURE_NAMES, KIND_NAMES, reads_as_advance
from features.references import TYPO
from models.money import from_cents

AUTO = "auto"
REVIEW = "review"
UNMATCHED = "unmatched"

# Columns of the top candidate's feature row that go into the calibrator.
SUMMARY_COLUMNS = (
    "ref_strength",
    "ref_support",
    "ref_other_orders",
    "closed_refs",
    "account_count",
    "name_score",
    "memo_names",
    "customer_rank",
    "customer_payments",
    "balance_share",
    "left_open_share",
    "fee_share",
    "combination_count",
    "equal_count",
    "memo_shape_odds",
    "repeat",
    "payer_is_person",
    "identified",
    "n_customers",
)
_SUMMARY_INDEX = [FEATURE_NAMES.index(name) for name in SUMMARY_COLUMNS]
_KIND_INDEX = {kind: i for i, kind in enumerate(KIND_NAMES)}
_COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}


_REF_STRENGTH = _COLUMN["ref_strength"]
_ACCOUNT_COUNT = _COLUMN["account_count"]
_NAME_SCORE = _COLUMN["name_score"]
_FIRM_NAMES = [
    _COLUMN[name] for name in ("name_exact", "name_alias", "name_pinyin", "memo_names")
]
_SHAPE_ODDS = _COLUMN["memo_shape_odds"]


def identity_level(row) -> int:
    """Return how firmly a candidate's row ties the payer to its customer.

    3: a reference in the memo or a known payer account; 2: the exact name,
    an alias, the pinyin or the memo naming the customer; 1: a similar name
    only; 0: nothing but the amount.
    """
    if row[_REF_STRENGTH] > TYPO or row[_ACCOUNT_COUNT] > 0:
        return 3
    if any(row[column] > 0 for column in _FIRM_NAMES):
        return 2
    return 1 if row[_NAME_SCORE] > 0 else 0


def line_summary(
    scores: np.ndarray, kinds: list[str], matrix: np.ndarray
) -> list[float]:
    """Return the per-line inputs of the calibrator from its ranked candidates.

    The score gaps measure how clearly the top candidate won. Its kind and
    a few of its features show how often such a win is right. Plain Python
    on lists, because the arrays of one line are too small for numpy to pay.
    """
    values = scores.tolist()
    order = sorted(range(len(values)), key=values.__getitem__, reverse=True)
    top = order[0]
    best = values[top]
    second = values[order[1]] if len(order) > 1 else best - 10.0
    share = 1.0 / sum(math.exp(max(value - best, -30.0)) for value in values)
    kind_flags = [0.0] * len(KIND_NAMES)
    kind_flags[_KIND_INDEX[kinds[top]]] = 1.0
    row = matrix[top].tolist()
    identity_flags = [0.0] * 4
    identity_flags[identity_level(row)] = 1.0
    runner_is_none = float(len(order) > 1 and kinds[order[1]] == "none")
    # How much better another candidate's shape fits the memo's words.
    shape_gap = max(matrix[:, _SHAPE_ODDS].tolist()) - row[_SHAPE_ODDS]
    return [
        best,
        min(best - second, 10.0),
        share,
        runner_is_none,
        math.log(len(values)),
        shape_gap,
        *kind_flags,
        *identity_flags,
        *(row[i] for i in _SUMMARY_INDEX),
    ]


class ConfidenceCalibrator(BaseEstimator):
    """Map a line's ranked candidates to P(the whole allocation is right).

    A logistic regression on standardised line summaries, fitted on lines
    the ranker did not train on. Prediction is plain numpy, so one line
    costs microseconds.
    """

    def __init__(self, *, C: float = 0.5):
        self.C = C

    def fit(self, X, y) -> ConfidenceCalibrator:
        """Fit on line summaries `X` and 1 where the top candidate was right."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int32)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(
                f"X must be 2-D with one row per label; got {X.shape} and {len(y)}"
            )
        if len(set(y.tolist())) < 2:
            raise ValueError(
                "calibration needs right and wrong top candidates; "
                f"all {len(y)} validation lines have label {int(y[0]) if len(y) else '-'}"
            )
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 1e-9, scale, 1.0)
        model = LogisticRegression(C=self.C, max_iter=2000)
        model.fit((X - self.mean_) / self.scale_, y)
        self.coef_ = model.coef_[0].copy()
        self.intercept_ = float(model.intercept_[0])
        self.n_features_in_ = X.shape[1]
        # The same model on raw summaries, for scoring one line in Python.
        self.raw_coef_ = [float(c) for c in self.coef_ / self.scale_]
        self.raw_intercept_ = self.intercept_ - float(
            np.sum(self.coef_ * self.mean_ / self.scale_)
        )
        return self

    def probability(self, summary: list[float]) -> float:
        """Return the calibrated probability for one line's summary."""
        # A plain attribute test: sklearn's check costs more than the sum.
        if not hasattr(self, "raw_coef_"):
            raise NotFittedError(
                "this ConfidenceCalibrator is not fitted yet; call fit() first"
            )
        if len(summary) != self.n_features_in_:
            raise ValueError(
                f"expected {self.n_features_in_} summary values, got {len(summary)}"
            )
        logit = self.raw_intercept_
        for weight, value in zip(self.raw_coef_, summary):
            logit += weight * value
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, logit))))

    def predict_proba_right(self, X) -> np.ndarray:
        """Return the calibrated probability that each top candidate is right."""
        check_is_fitted(self, "coef_")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"expected {self.n_features_in_} summary values per line, got {X.shape}"
            )
        logit = ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -40.0, 40.0)))


def choose_threshold(
    confidence: np.ndarray, right: np.ndarray, *, target_precision: float
) -> float:
    """Return the lowest confidence at which automatic decisions stay precise.

    Walks the held-out lines from the most confident down and keeps the
    lowest cut whose precision above it still meets the target. With no such
    cut the threshold is above 1, so nothing is decided automatically.
    """
    order = np.argsort(-confidence, kind="stable")
    ranked_conf = confidence[order]
    ranked_right = right[order].astype(np.float64)
    precision = np.cumsum(ranked_right) / np.arange(1, len(order) + 1)
    threshold = 1.01
    for i in range(len(order)):
        if precision[i] >= target_precision:
            # Stop only between distinct confidence values.
            if i + 1 == len(order) or ranked_conf[i + 1] < ranked_conf[i]:
                threshold = float(ranked_conf[i])
    return threshold


def reads_as_prepayment(context) -> bool:
    """Tell whether a line's memo calls the money a prepayment.

    Either the memo's learned words make the balance the likeliest shape,
    or the memo's own words name a prepayment
    (`features.pairs.reads_as_advance`).
    """
    if reads_as_advance(context.line.memo):
        return True
    odds = context.memo_odds
    if not odds:
        return False
    balance = odds.get("balance", 0.0)
    return balance > 0 and balance >= max(odds.values())


@dataclass(frozen=True)
class Guard:
    """A reason that forbids an automatic decision."""

    code: str
    text: str


def guards(
    context, top, runner_up, top_score: float, runner_score: float | None, margin: float
) -> list[Guard]:
    """Return the policy rules that keep this line from an automatic decision."""
    found: list[Guard] = []
    referenced = context.referenced_orders
    chosen = set(top.order_ids)
    strong_refs = {oid for oid, strength in referenced.items() if strength > TYPO}
    # A memo that names another order means the payer meant something else.
    if strong_refs and not strong_refs <= chosen:
        names = ", ".join(sorted(strong_refs - chosen))
        found.append(Guard("reference_conflict", f"memo names {names}, not the choice"))
    # A memo naming a paid order is a repeat or an error, unless it is one
    # typo away from the chosen order.
    backed = any(context.support_of(oid) for oid in chosen)
    if context.closed_references and not backed:
        found.append(Guard("closed_reference", "memo names an order that is not open"))
    # A memo naming several orders with too little money for all of them is
    # a short payment that a clerk should look at.
    if top.kind == "reference" and len(referenced) >= 2 and top.left_open > 0:
        short = f"{from_cents(top.left_open):,.2f}"
        found.append(
            Guard(
                "short_payment",
                f"memo names {len(referenced)} orders; short by {short}",
            )
        )
    if top.kind == "amount_only":
        found.append(Guard("amount_only", "only the amount links an unknown payer"))
    # Which unnamed order a payment overpays or pays part of is a guess.
    if top.kind in ("overpay", "partial"):
        found.append(
            Guard("unnamed_order", "the memo names no order for a part or extra")
        )
    # Money that fits no order goes to the balance automatically only when
    # the memo calls it a prepayment. Otherwise it likely belongs to an
    # order the matcher cannot see.
    if top.kind == "balance" and not reads_as_prepayment(context):
        found.append(
            Guard("no_order", "no open order fits and the memo names no prepayment")
        )
    payers = context.account_customers
    if payers and top.customer_id not in payers:
        found.append(
            Guard("other_payer", "the payer account belongs to another customer")
        )
    if (
        runner_up is not None
        and runner_score is not None
        and top_score - runner_score < margin
        and runner_up.key() != top.key()
        and runner_up.kind != "none"
    ):
        found.append(
            Guard("close_call", "another candidate books the money differently")
        )
    if context.line.unknown_type:
        found.append(Guard("unknown_type", "unknown transaction type"))
    return found
