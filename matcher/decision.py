"""Calibrated confidence and the decision policy: auto, review or unmatched."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

AUTO = "auto"
REVIEW = "review"
UNMATCHED = "unmatched"


def line_summary(scores: np.ndarray, kinds: list[str], identified: bool) -> list[float]:
    """Return the per-line inputs of the calibrator from its ranked scores."""
    order = np.argsort(-scores)
    top = float(scores[order[0]])
    second = float(scores[order[1]]) if len(order) > 1 else top - 10.0
    top_kind = kinds[order[0]]
    return [
        top,
        top - second,
        float(top_kind == "reference"),
        float(top_kind in ("balance", "partial", "overpay")),
        float(top_kind == "none"),
        float(identified),
        math.log(len(scores)),
    ]


class ConfidenceCalibrator(BaseEstimator):
    """Map a line's ranked scores to P(the whole allocation is right).

    A logistic model on the score summary, then isotonic regression on its
    output, fitted on lines the ranker did not train on.
    """

    def __init__(self, *, C: float = 1.0):
        self.C = C

    def fit(self, X, y) -> "ConfidenceCalibrator":
        """Fit on line summaries `X` and 1 where the top candidate was right."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int32)
        if len(set(y.tolist())) < 2:
            raise ValueError(
                "calibration needs right and wrong top candidates; "
                f"all {len(y)} validation lines have label {int(y[0]) if len(y) else '-'}"
            )
        self.logistic_ = LogisticRegression(C=self.C, max_iter=1000).fit(X, y)
        raw = self.logistic_.predict_proba(X)[:, 1]
        self.isotonic_ = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
        self.isotonic_.fit(raw, y)
        return self

    def predict_proba_right(self, X) -> np.ndarray:
        """Return the calibrated probability that each top candidate is right."""
        check_is_fitted(self, "isotonic_")
        raw = self.logistic_.predict_proba(np.asarray(X, dtype=np.float64))[:, 1]
        return self.isotonic_.predict(raw)


def choose_threshold(
    confidence: np.ndarray, right: np.ndarray, *, target_precision: float
) -> float:
    """Return the lowest confidence at which automatic decisions stay precise.

    Walks the validation lines from the most confident down and keeps the
    lowest cut whose precision above it still meets the target. With no such
    cut the threshold is above 1, so nothing is decided automatically.
    """
    order = np.argsort(-confidence)
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


@dataclass(frozen=True)
class Guard:
    """A reason that forbids an automatic decision."""

    code: str
    text: str


def guards(context, top, runner_up, top_score: float, runner_score: float | None,
           margin: float) -> list[Guard]:
    """Return the policy rules that keep this line from an automatic decision."""
    found: list[Guard] = []
    referenced = context.referenced_orders
    chosen = set(top.order_ids)
    strong_refs = {oid for oid, strength in referenced.items() if strength >= 2}
    # A memo that names another order means the payer meant something else.
    if strong_refs and not strong_refs & chosen:
        names = ", ".join(sorted(strong_refs))
        found.append(Guard("reference_conflict", f"memo names {names}, not the choice"))
    if top.kind == "amount_only":
        found.append(Guard("amount_only", "only the amount links an unknown payer"))
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
