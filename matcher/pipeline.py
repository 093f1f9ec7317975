"""Matching statement lines: blocking, features, ranking, decision, anomalies.

Everything here works on plain records and a `MatchIndex`; nothing opens a
database. `match_batch` books each line's best suggestion into the index
before the next line, so two lines of one batch never both settle the same
open amount.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from features.pairs import FEATURE_NAMES, candidate_matrix
from ingest.records import StatementRecord
from matcher.anomaly import AnomalyScorer, DuplicateTracker, anomaly_features
from matcher.candidates import Candidate, LineContext, block, generate
from matcher.decision import (
    AUTO,
    REVIEW,
    UNMATCHED,
    ConfidenceCalibrator,
    Guard,
    guards,
    line_summary,
)
from matcher.index import MatchIndex, MatchSettings
from matcher.ranker import CandidateRanker
from models.errors import ModelNotReady
from models.money import from_cents

log = logging.getLogger("cashmatch.matcher")


@dataclass
class MatchModel:
    """A trained ranker with its calibration, threshold and anomaly scorer."""

    ranker: CandidateRanker
    calibrator: ConfidenceCalibrator | None
    threshold: float
    version: str
    anomaly: AnomalyScorer | None = None
    typical_amounts: dict[str, float] = field(default_factory=dict)
    feature_names: tuple[str, ...] = FEATURE_NAMES
    metrics: dict = field(default_factory=dict)

    def check(self) -> None:
        """Raise ModelNotReady when the features no longer fit the model."""
        if tuple(self.feature_names) != FEATURE_NAMES:
            raise ModelNotReady(
                f"model {self.version} was trained on other features; "
                "retrain it with `cashmatch train`"
            )


@dataclass
class ScoredCandidate:
    """A candidate with its ranker score."""

    candidate: Candidate
    score: float


@dataclass
class LineResult:
    """The matcher's verdict on one line."""

    line: StatementRecord
    decision: str
    confidence: float
    chosen: Candidate
    ranked: list[ScoredCandidate]
    reasons: list[str]
    anomaly_score: float
    anomaly_reasons: list[str]
    model_version: str

    def rows(self) -> list[dict]:
        """Return the allocation rows of the chosen candidate."""
        chosen = self.chosen
        common = {
            "line_ref": self.line.line_ref,
            "confidence": round(self.confidence, 4),
            "decision": self.decision,
            "anomaly_score": round(self.anomaly_score, 4),
            "anomaly_reasons": "|".join(self.anomaly_reasons),
        }
        if chosen.customer_id is None or chosen.kind == "none":
            return [
                dict(common, customer_id="", order_id="", target="none",
                     amount=self.line.amount)
            ]
        rows = [
            dict(common, customer_id=chosen.customer_id, order_id=order_id,
                 target="order", amount=from_cents(cents))
            for order_id, cents in chosen.orders
        ]
        if chosen.balance:
            rows.append(
                dict(common, customer_id=chosen.customer_id, order_id="",
                     target="balance", amount=from_cents(chosen.balance))
            )
        rows += [
            dict(common, customer_id=chosen.customer_id, order_id=order_id,
                 target="fee", amount=from_cents(cents))
            for order_id, cents in chosen.fees
        ]
        return rows


def score_line(index: MatchIndex, model: MatchModel, line: StatementRecord):
    """Block, generate and rank the candidates of one line."""
    context = block(index, line)
    candidates = generate(index, context)
    matrix = candidate_matrix(index, context, candidates)
    scores = model.ranker.predict(matrix)
    return context, candidates, scores


def decide(
    index: MatchIndex,
    model: MatchModel,
    context: LineContext,
    candidates: list[Candidate],
    scores: np.ndarray,
) -> tuple[str, float, list[ScoredCandidate], list[str]]:
    """Turn ranked candidates into a decision, a confidence and reasons."""
    order = np.argsort(-scores, kind="stable")
    ranked = [ScoredCandidate(candidates[i], float(scores[i])) for i in order]
    top = ranked[0]
    kinds = [c.kind for c in candidates]
    summary = line_summary(scores, kinds, bool(context.customers))
    if model.calibrator is not None:
        confidence = float(model.calibrator.predict_proba_right([summary])[0])
    else:
        confidence = 0.0

    reasons = list(top.candidate.reasons)
    reasons += _identity_reasons(context, top.candidate)
    if context.line.amount <= 0 or top.candidate.kind == "none":
        return UNMATCHED, confidence, ranked, reasons or ["no match"]

    runner = ranked[1] if len(ranked) > 1 else None
    blocked = guards(
        context,
        top.candidate,
        runner.candidate if runner else None,
        top.score,
        runner.score if runner else None,
        index.settings.margin,
    )
    blocked += _currency_guard(index, context, top.candidate)
    reasons += [f"review: {guard.text}" for guard in blocked]
    if blocked or confidence < model.threshold:
        return REVIEW, confidence, ranked, reasons
    return AUTO, confidence, ranked, reasons


def _currency_guard(index, context, candidate) -> list[Guard]:
    for order_id in candidate.order_ids:
        order = index.orders.get(order_id)
        if order is not None and order.currency != context.line.currency:
            return [
                Guard(
                    "foreign_currency",
                    f"line in {context.line.currency}, order in {order.currency}",
                )
            ]
    return []


def _identity_reasons(context: LineContext, candidate: Candidate) -> list[str]:
    cid = candidate.customer_id
    if cid is None:
        return []
    reasons = []
    count = context.account_customers.get(cid, 0)
    if count:
        reasons.append(f"payer account seen in {count} earlier payments")
    match = context.name_matches.get(cid)
    if match is not None:
        how = "exact" if match.exact else "alias" if match.alias else "similar"
        reasons.append(f"payer name {how} ({match.score:.0f}/100)")
    if not count and match is None and candidate.kind != "amount_only":
        reasons.append("customer named by the memo's reference")
    return reasons


class Matcher:
    """Matches lines against an index with one model, keeping batch state."""

    def __init__(self, index: MatchIndex, model: MatchModel):
        model.check()
        self.index = index
        self.model = model
        self.duplicates = DuplicateTracker()

    def match(
        self, line: StatementRecord, *, book: bool = True, score_anomaly: bool = True
    ) -> LineResult:
        """Match one line; with `book`, the suggestion reduces open amounts.

        With `score_anomaly` false the anomaly score is left at 0.0 for the
        caller to fill in with `score_anomalies`, which is faster in batches.
        """
        context, candidates, scores = score_line(self.index, self.model, line)
        decision, confidence, ranked, reasons = decide(
            self.index, self.model, context, candidates, scores
        )
        chosen = ranked[0].candidate if decision != UNMATCHED else _none(ranked)
        anomaly_reasons = self._anomaly_reasons(line, context, chosen, decision)
        score = self._anomaly_score(line, chosen) if score_anomaly else 0.0
        if "duplicate" in anomaly_reasons and decision == AUTO:
            decision = REVIEW
            reasons.append("review: looks like a repeat of an earlier payment")

        result = LineResult(
            line=line,
            decision=decision,
            confidence=confidence,
            chosen=chosen,
            ranked=ranked,
            reasons=reasons,
            anomaly_score=score,
            anomaly_reasons=anomaly_reasons,
            model_version=self.model.version,
        )
        if book:
            self.book(result)
        return result

    def book(self, result: LineResult) -> None:
        """Apply a result's allocation to the index and remember the payer."""
        chosen = result.chosen
        for order_id, cents in chosen.orders:
            self.index.reduce_open(order_id, cents)
        for order_id, cents in chosen.fees:
            self.index.reduce_open(order_id, cents)
        if chosen.customer_id and result.decision == AUTO:
            self.index.learn_payer(
                customer_id=chosen.customer_id,
                name=result.line.counterparty_name,
                account=result.line.counterparty_account,
            )
        self.duplicates.add(result.line)

    def match_batch(self, lines: list[StatementRecord]) -> list[LineResult]:
        """Match lines in booking-date order; results come back in input order."""
        order = sorted(range(len(lines)), key=lambda i: (lines[i].booking_date, i))
        results: list[LineResult | None] = [None] * len(lines)
        for i in order:
            results[i] = self.match(lines[i], score_anomaly=False)
        self.score_anomalies(results)  # type: ignore[arg-type]
        log.info("matched %d lines with model %s", len(lines), self.model.version)
        return results  # type: ignore[return-value]

    def score_anomalies(self, results: list[LineResult]) -> None:
        """Set the learned anomaly score of many results in one batch.

        IsolationForest costs milliseconds per call whatever the number of
        rows, so scoring line by line would dominate the matching time.
        """
        if self.model.anomaly is None or not results:
            return
        features = [
            anomaly_features(
                r.line, r.chosen.customer_id, self.model.typical_amounts
            )
            for r in results
        ]
        for result, value in zip(results, self.model.anomaly.score(features)):
            result.anomaly_score = float(value)

    def _anomaly_reasons(self, line, context, chosen, decision) -> list[str]:
        reasons: list[str] = []
        if self.duplicates.is_repeat(line) and chosen.kind not in ("reference",):
            reasons.append("duplicate")
        strong = {oid for oid, s in context.referenced_orders.items() if s >= 2}
        if strong and not strong & set(chosen.order_ids):
            reasons.append("reference_conflict")
        if line.amount > 0 and chosen.kind in ("balance", "overpay", "none"):
            if chosen.customer_id is not None or not context.customers:
                reasons.append("amount_mismatch")
        if line.amount > 0 and not context.customers:
            reasons.append("unidentified")
        cid = chosen.customer_id
        if (
            cid
            and line.counterparty_account
            and cid not in context.account_customers
        ):
            reasons.append("new_account")
        if line.is_reversal:
            reasons.append("reversal")
        if line.unknown_type:
            reasons.append("unknown_type")
        if _currency_guard(self.index, context, chosen):
            reasons.append("foreign_currency")
        return reasons

    def _anomaly_score(self, line, chosen) -> float:
        if self.model.anomaly is None:
            return 0.0
        features = anomaly_features(line, chosen.customer_id, self.model.typical_amounts)
        return float(self.model.anomaly.score([features])[0])


def _none(ranked: list[ScoredCandidate]) -> Candidate:
    for scored in ranked:
        if scored.candidate.kind == "none":
            return scored.candidate
    return Candidate("none", None, reasons=["no match"])


def allocation_rows(results: list[LineResult]) -> list[dict]:
    """Flatten results into rows of the allocations output."""
    rows: list[dict] = []
    for result in results:
        rows += result.rows()
    return rows


def truth_key(rows: list[dict]) -> tuple:
    """Return the comparable key of a line's allocation rows.

    Fee rows are left out, because a line settling an order net of a fee is
    right when its orders are right.
    """
    customer = ""
    orders = []
    balance = Decimal("0")
    for row in rows:
        if row["target"] == "none":
            continue
        customer = row["customer_id"] or customer
        if row["target"] == "order":
            orders.append((row["order_id"], Decimal(str(row["amount"]))))
        elif row["target"] == "balance":
            balance += Decimal(str(row["amount"]))
    return (customer, tuple(sorted(orders)), balance)


def group_rows(rows: list[dict]) -> dict[str, list[dict]]:
    """Group allocation rows by line_ref, keeping their order."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row["line_ref"]].append(row)
    return grouped


__all__ = [
    "AUTO",
    "REVIEW",
    "UNMATCHED",
    "LineResult",
    "MatchModel",
    "MatchSettings",
    "Matcher",
    "allocation_rows",
    "group_rows",
    "truth_key",
]
