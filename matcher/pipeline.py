"""Matching statement lines: blocking, features, ranking, decision, anomalies.

Everything here works on plain records and a `MatchIndex`; nothing opens a
database. `match_batch` books each line's best suggestion into the index
before the next line, so two lines of one batch never both settle the same
open amount.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from features.pairs import FEATURE_NAMES, candidate_matrix
from features.text import normalize_account
from ingest.records import StatementRecord
from matcher.anomaly import (
    ALERT_TEXTS,
    AnomalyScorer,
    anomaly_features,
    anomaly_reasons,
)
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

# Alerts that keep a line from an automatic decision. A conflicting memo
# already does so through the decision guards.
REVIEW_ALERTS = ("duplicate",)

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def paused_cyclic_gc() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector while a batch runs.

    A full collection walks every object the collector tracks, and an index
    of a million open orders has millions, so collections during a batch
    grow with the open orders (a fifth of the matching time at 100,000).
    Matching creates almost no reference cycles, and reference counting
    frees the rest at once. Nested and concurrent pauses restore the
    collector when the last one ends, and only if it was on before.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


@dataclass
class MatchModel:
    """A trained ranker with its calibration, threshold and anomaly scorer."""

    ranker: CandidateRanker
    calibrator: ConfidenceCalibrator | None
    threshold: float
    version: str
    anomaly: AnomalyScorer | None = None
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
    """The matcher's verdict on one line.

    `anomaly_input` contains the anomaly features as they were when the
    line was matched, so a batch can score them all at once afterwards.
    """

    line: StatementRecord
    decision: str
    confidence: float
    chosen: Candidate
    ranked: list[ScoredCandidate]
    reasons: list[str]
    anomaly_score: float
    anomaly_reasons: list[str]
    model_version: str
    anomaly_input: list[float] = field(default_factory=list, repr=False)

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
                dict(
                    common,
                    customer_id="",
                    order_id="",
                    target="none",
                    amount=self.line.amount,
                )
            ]
        rows = [
            dict(
                common,
                customer_id=chosen.customer_id,
                order_id=order_id,
                target="order",
                amount=from_cents(cents),
            )
            for order_id, cents in chosen.orders
        ]
        if chosen.balance:
            rows.append(
                dict(
                    common,
                    customer_id=chosen.customer_id,
                    order_id="",
                    target="balance",
                    amount=from_cents(chosen.balance),
                )
            )
        rows += [
            dict(
                common,
                customer_id=chosen.customer_id,
                order_id=order_id,
                target="fee",
                amount=from_cents(cents),
            )
            for order_id, cents in chosen.fees
        ]
        return rows


@dataclass
class ScoredLine:
    """A line's blocking context, candidates, their features and scores."""

    context: LineContext
    candidates: list[Candidate]
    matrix: np.ndarray
    scores: np.ndarray


def score_line(
    index: MatchIndex, model: MatchModel, line: StatementRecord
) -> ScoredLine:
    """Block, generate and rank the candidates of one line."""
    context = block(index, line)
    candidates = generate(index, context)
    matrix = candidate_matrix(index, context, candidates)
    scores = model.ranker.predict(matrix)
    return ScoredLine(context, candidates, matrix, scores)


def decide(
    index: MatchIndex, model: MatchModel, scored: ScoredLine
) -> tuple[str, float, list[ScoredCandidate], list[str]]:
    """Turn ranked candidates into a decision, a confidence and reasons."""
    context, candidates, scores = scored.context, scored.candidates, scored.scores
    order = np.argsort(-scores, kind="stable")
    ranked = [ScoredCandidate(candidates[i], float(scores[i])) for i in order]
    top = ranked[0]
    if model.calibrator is not None:
        summary = line_summary(scores, [c.kind for c in candidates], scored.matrix)
        confidence = model.calibrator.probability(summary)
    else:
        confidence = 0.0

    reasons = list(top.candidate.reasons)
    reasons += _identity_reasons(index, context, top.candidate)
    if context.line.amount <= 0 or top.candidate.kind == "none":
        if context.line.unknown_type:
            reasons.append("unknown transaction type")
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


def _identity_reasons(
    index: MatchIndex, context: LineContext, candidate: Candidate
) -> list[str]:
    cid = candidate.customer_id
    if cid is None:
        return []
    reasons = []
    # `account_customers` counts a master-data account as one payment more,
    # so these reasons look up the master data and the payment history separately.
    account = normalize_account(context.line.counterparty_account)
    if account and cid in index.master_accounts.get(account, ()):
        reasons.append("payer account in the customer master")
    payments = index.seen_accounts.get(account, {}).get(cid, 0) if account else 0
    if payments:
        noun = "payment" if payments == 1 else "payments"
        reasons.append(f"payer account seen in {payments} earlier {noun}")
    count = context.account_customers.get(cid, 0)
    match = context.name_matches.get(cid)
    if match is not None:
        how = "exact" if match.exact else "alias" if match.alias else "similar"
        reasons.append(f"payer name {how} ({match.score:.0f}/100)")
    if cid in context.memo_customers:
        reasons.append("memo names the customer")
    named = any(
        context.referenced_orders.get(oid, 0) > 0 for oid in candidate.order_ids
    )
    known = count or match or named or cid in context.memo_customers
    if not known and candidate.kind != "amount_only":
        reasons.append("customer named by the memo's reference")
    return reasons


class Matcher:
    """Matches lines against an index with one model, keeping batch state."""

    def __init__(self, index: MatchIndex, model: MatchModel):
        model.check()
        self.index = index
        self.model = model

    def match(
        self, line: StatementRecord, *, book: bool = True, score_anomaly: bool = True
    ) -> LineResult:
        """Match one line; with `book`, the suggestion reduces open amounts.

        With `score_anomaly` false the anomaly score is left at 0.0 for the
        caller to fill in with `score_anomalies`, which is faster in batches.
        """
        return self.match_scored(line, book=book, score_anomaly=score_anomaly)[1]

    def match_scored(
        self, line: StatementRecord, *, book: bool = True, score_anomaly: bool = True
    ) -> tuple[ScoredLine, LineResult]:
        """Match one line like `match`; also return its scored candidates."""
        scored = score_line(self.index, self.model, line)
        decision, confidence, ranked, reasons = decide(self.index, self.model, scored)
        chosen = ranked[0].candidate if decision != UNMATCHED else _none(ranked)
        mismatch = bool(_currency_guard(self.index, scored.context, chosen))
        found = anomaly_reasons(
            self.index, scored.context, chosen, currency_mismatch=mismatch
        )
        # A likely double payment waits for a clerk. The other alerts flag a
        # line whose allocation may still be booked unchanged.
        alerts = [r for r in found if r in REVIEW_ALERTS]
        if alerts and decision == AUTO:
            decision = REVIEW
            reasons += [f"review: {ALERT_TEXTS[alert]}" for alert in alerts]

        result = LineResult(
            line=line,
            decision=decision,
            confidence=confidence,
            chosen=chosen,
            ranked=ranked,
            reasons=reasons,
            anomaly_score=0.0,
            anomaly_reasons=found,
            model_version=self.model.version,
            anomaly_input=anomaly_features(self.index, line, chosen),
        )
        if score_anomaly:
            self.score_anomalies([result])
        if book:
            self.book(result)
        return scored, result

    def book(self, result: LineResult) -> None:
        """Apply a result's allocation to the index and remember the payer."""
        chosen = result.chosen
        line = result.line
        for order_id, cents in chosen.orders:
            self.index.reduce_open(order_id, cents)
        for order_id, cents in chosen.fees:
            self.index.reduce_open(order_id, cents)
        if chosen.customer_id and chosen.balance:
            self.index.add_to_balance(
                chosen.customer_id, chosen.balance, line.booking_date
            )
        if chosen.customer_id and result.decision == AUTO:
            self.index.learn_payer(
                customer_id=chosen.customer_id,
                name=line.counterparty_name,
                account=line.counterparty_account,
                amount=line.amount,
            )
        self.index.recent.add(line)

    def match_batch(self, lines: list[StatementRecord]) -> list[LineResult]:
        """Match lines in booking-date order; results come back in input order."""
        order = sorted(range(len(lines)), key=lambda i: (lines[i].booking_date, i))
        results: list[LineResult | None] = [None] * len(lines)
        with paused_cyclic_gc():
            for i in order:
                results[i] = self.match(lines[i], score_anomaly=False)
        self.score_anomalies(results)  # type: ignore[arg-type]
        log.info("matched %d lines with model %s", len(lines), self.model.version)
        return results  # type: ignore[return-value]

    def score_anomalies(self, results: list[LineResult]) -> None:
        """Set the learned anomaly score of many results in one call.

        Money out keeps a score of 0.0: the score compares money in with
        the customers' usual payments.
        """
        if self.model.anomaly is None or not results:
            return
        money_in = [r for r in results if r.line.amount > 0]
        if not money_in:
            return
        features = [result.anomaly_input for result in money_in]
        for result, value in zip(money_in, self.model.anomaly.score(features)):
            result.anomaly_score = float(value)


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
