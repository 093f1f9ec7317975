"""Matching stored statement lines and booking what the matcher decided.

`auto` lines are booked at once, `review` lines get proposed allocations and
a review task, `unmatched` money in gets a review task so a clerk can claim
it. A bank reversal (MT940 `RC`) reverses the credit it cancels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import Session, select

from ingest.records import StatementRecord
from matcher.candidates import Candidate
from matcher.index import DUPLICATE_WINDOW, MatchIndex, RecentCredits
from matcher.pipeline import AUTO, REVIEW, UNMATCHED, LineResult, Matcher, MatchModel
from models.errors import AllocationConflict
from models.money import from_cents
from models.tables import Allocation, AuditEvent, ReviewTask, StatementLine, utcnow
from service import booking, ledger
from service.auditing import sample_for_audit
from service.booking import Part
from service.imports import FOREIGN_CURRENCY
from service.index import IndexCache, load_index, statement_record
from service.settings import Settings

log = logging.getLogger("cashmatch.service")

SHOWN_CANDIDATES = 5
REVERSED = "reversed"
# Statuses of the credits that a bank reversal can cancel.
CANCELLABLE_STATUSES = booking.OPEN_LINE_STATUSES + ("allocated",)


@dataclass
class LineOutcome:
    """A stored line with the matcher's result and what was booked."""

    line: StatementLine
    result: LineResult
    decision: str
    reasons: list[str]


def candidate_parts(candidate: Candidate) -> list[Part]:
    """Return the allocations a candidate would book."""
    cid = candidate.customer_id
    parts = [
        Part("order", from_cents(cents), cid, order_id)
        for order_id, cents in candidate.orders
    ]
    if candidate.balance:
        parts.append(Part("balance", from_cents(candidate.balance), cid))
    parts += [
        Part("fee", from_cents(cents), cid, order_id)
        for order_id, cents in candidate.fees
    ]
    return parts


def candidate_view(candidate: Candidate, score: float) -> dict:
    """Return a candidate as plain data for review screens and labels."""
    return {
        "kind": candidate.kind,
        "customer_id": candidate.customer_id,
        "orders": [[oid, str(from_cents(c))] for oid, c in candidate.orders],
        "balance": str(from_cents(candidate.balance)),
        "fees": [[oid, str(from_cents(c))] for oid, c in candidate.fees],
        "reasons": list(candidate.reasons),
        "score": round(float(score), 4),
    }


def match_lines(
    session: Session,
    lines: Sequence[StatementLine],
    model: MatchModel,
    settings: Settings,
    *,
    dry_run: bool = False,
    actor: str = "matcher",
    index_cache: IndexCache | None = None,
) -> list[LineOutcome]:
    """Match stored lines and, unless `dry_run`, book the results.

    With `index_cache` the lines are matched on the cached index of the
    database, which a long-running service keeps; without it the index is
    read in full, which suits one batch.
    """
    records = [statement_record(line) for line in lines]
    if index_cache is None:
        index = load_index(session, settings)
        _seed_recent_credits(session, index, lines)
        results = Matcher(index, model).match_batch(records)
    else:
        with index_cache.use(session, settings) as index:
            results = _match_on_shared_index(session, index, model, lines, records)

    outcomes = []
    for line, result in zip(lines, results, strict=True):
        if dry_run:
            outcomes.append(LineOutcome(line, result, result.decision, result.reasons))
            continue
        outcomes.append(_store(session, line, result, actor))
    session.flush()
    if not dry_run:
        sample_for_audit(session, outcomes, settings.audit_share)
        log.info(
            "booked %d lines: %d auto, %d review, %d unmatched",
            len(outcomes),
            sum(o.decision == AUTO for o in outcomes),
            sum(o.decision == REVIEW for o in outcomes),
            sum(o.decision == UNMATCHED for o in outcomes),
        )
    return outcomes


def _match_on_shared_index(
    session: Session,
    index: MatchIndex,
    model: MatchModel,
    lines: Sequence[StatementLine],
    records: list[StatementRecord],
) -> list[LineResult]:
    """Match lines on a shared index and leave it as it was.

    Within the batch each line's suggestion takes its orders' open amounts
    off, so two lines of one batch never both settle the same money; the
    amounts are put back afterwards, because only the database's committed
    bookings may change the shared index.
    """
    matcher = Matcher(index, model)
    shared_recent = index.recent
    taken: list[tuple[str, int]] = []
    results: list[LineResult | None] = [None] * len(records)
    try:
        _seed_recent_credits(session, index, lines)
        order = sorted(range(len(records)), key=lambda i: (records[i].booking_date, i))
        for i in order:
            result = matcher.match(records[i], book=False, score_anomaly=False)
            for order_id, cents in result.chosen.orders + result.chosen.fees:
                if order_id in index.orders:
                    taken.append((order_id, index.orders[order_id].open))
                    index.reduce_open(order_id, cents)
            index.recent.add(records[i])
            results[i] = result
        matcher.score_anomalies(results)
    finally:
        for order_id, cents in reversed(taken):
            index.set_open(order_id, cents)
        index.recent = shared_recent
    return results  # type: ignore[return-value]


def _seed_recent_credits(
    session: Session, index: MatchIndex, lines: Sequence[StatementLine]
) -> None:
    """Give the index the stored credits a repeated payment would repeat.

    The lines being matched are left out, so a line is never its own
    duplicate; voided lines are left out, because their money never came.
    """
    index.recent = RecentCredits()
    credits = [line for line in lines if line.amount > 0]
    if not credits:
        return
    first = min(line.booking_date for line in credits) - DUPLICATE_WINDOW
    last = max(line.booking_date for line in credits)
    query = select(StatementLine).where(
        StatementLine.amount.in_({line.amount for line in credits}),
        StatementLine.booking_date >= first,
        StatementLine.booking_date <= last,
        StatementLine.status.not_in(("new", "voided")),
        StatementLine.id.not_in([line.id for line in lines if line.id is not None]),
    )
    for earlier in session.exec(query).all():
        index.recent.add(statement_record(earlier))


def _store(
    session: Session, line: StatementLine, result: LineResult, actor: str
) -> LineOutcome:
    decision = result.decision
    reasons = list(result.reasons)
    import_reasons = set(line.anomaly_reasons or ())
    _record_verdict(line, result, import_reasons)

    if line.status == REVERSED:
        # A bank reversal cancelled the credit, for example one earlier in
        # this batch, so there is no money left to book or to review.
        reasons.append("cancelled by a bank reversal")
        line.decision = decision
        session.add(line)
        return LineOutcome(line, result, decision, reasons)

    if decision == AUTO and FOREIGN_CURRENCY in import_reasons:
        # The matcher compares the line's currency with the order's only, so
        # a line in another currency than its account could reach a balance.
        decision = REVIEW
        reasons.append(f"review: line in {line.currency}, not the account's currency")
    if line.is_reversal and line.amount < 0:
        reasons += _reverse_cancelled_credit(session, line, actor)
    elif decision == AUTO:
        decision = _book_auto(session, line, result, actor, reasons)
    if decision == REVIEW:
        booking.propose(
            session,
            line,
            candidate_parts(result.chosen),
            confidence=result.confidence,
            decision=REVIEW,
            model_version=result.model_version,
        )
    if decision != AUTO and line.status in ("new", "review", "unmatched"):
        line.status = "review" if decision == REVIEW else "unmatched"
        if line.amount > 0:
            _open_task(session, line, result, "; ".join(reasons))
    line.decision = decision
    session.add(line)
    return LineOutcome(line, result, decision, reasons)


def _record_verdict(
    line: StatementLine, result: LineResult, import_reasons: set[str]
) -> None:
    line.confidence = float(result.confidence)
    line.anomaly_score = float(result.anomaly_score)
    reasons = list(result.anomaly_reasons)
    line.anomaly_reasons = reasons + sorted(import_reasons - set(reasons))
    line.model_version = result.model_version
    line.suggestion = {
        "reasons": list(result.reasons),
        "candidates": [
            candidate_view(scored.candidate, scored.score)
            for scored in result.ranked[:SHOWN_CANDIDATES]
        ],
    }


def _book_auto(
    session: Session,
    line: StatementLine,
    result: LineResult,
    actor: str,
    reasons: list[str],
) -> str:
    """Confirm an automatic decision, or send it to review on a conflict."""
    parts = candidate_parts(result.chosen)
    try:
        with session.begin_nested():
            booking.confirm(
                session,
                line,
                parts,
                actor=actor,
                confidence=result.confidence,
                decision=AUTO,
                model_version=result.model_version,
            )
    except (AllocationConflict, booking.InvalidAllocation) as exc:
        log.warning("line %s sent to review: %s", line.line_ref, exc)
        session.refresh(line)
        reasons.append(f"review: {exc}")
        return REVIEW
    return AUTO


def _reverse_cancelled_credit(
    session: Session, line: StatementLine, actor: str
) -> list[str]:
    """Mark the credit a bank reversal cancels as reversed.

    An allocated credit has its allocations reversed. A credit that was never
    allocated loses its proposals and its open review task, so no clerk books
    money the bank took back.
    """
    original = _cancelled_credit(session, line)
    line.status = "reversal"
    if original is None:
        return ["bank reversal; no earlier credit of this amount found"]

    reason = f"reversed by the bank in line {line.line_ref}"
    previous_status = original.status
    if previous_status != "allocated" and _claim_open_credit(session, original):
        _close_open_credit(session, original, line, actor, reason, previous_status)
        return [f"bank reversal of line {original.line_ref}; it had no allocations"]

    # If a clerk booked the credit after it was read, its allocations are
    # reversed like those of any allocated credit.
    if original.status == "allocated":
        booking.reverse(
            session, original, actor=actor, reason=reason, reopen_as=REVERSED
        )
        return [f"bank reversal of line {original.line_ref}; its allocations reversed"]
    return ["bank reversal; no earlier credit of this amount found"]


def _cancelled_credit(session: Session, line: StatementLine) -> StatementLine | None:
    """Return the latest credit of the reversed amount that is open or allocated.

    An allocated credit comes before an open one of the same day, because
    its booking has to be undone.
    """
    query = (
        select(StatementLine)
        .where(
            StatementLine.account == line.account,
            StatementLine.amount == -line.amount,
            StatementLine.status.in_(CANCELLABLE_STATUSES),
            StatementLine.is_reversal.is_(False),
            StatementLine.booking_date <= line.booking_date,
            StatementLine.id != line.id,
        )
        .order_by(
            StatementLine.booking_date.desc(),
            (StatementLine.status == "allocated").desc(),
            StatementLine.id.desc(),
        )
    )
    return session.exec(query).first()


def _claim_open_credit(session: Session, credit: StatementLine) -> bool:
    """Mark an open credit reversed, unless a concurrent change moved it first."""
    return ledger.claim_open_line(session, credit, REVERSED)


def _close_open_credit(
    session: Session,
    credit: StatementLine,
    reversal: StatementLine,
    actor: str,
    reason: str,
    previous_status: str,
) -> None:
    """Reject the proposals of a reversed credit, close its task and audit it."""
    now = utcnow()
    proposals = session.exec(
        select(Allocation).where(
            Allocation.line_id == credit.id, Allocation.status == "proposed"
        )
    ).all()
    for proposal in proposals:
        proposal.status = "rejected"
        session.add(proposal)

    tasks = session.exec(
        select(ReviewTask).where(
            ReviewTask.line_id == credit.id, ReviewTask.status == "open"
        )
    ).all()
    for task in tasks:
        task.status = "closed"
        task.decided_by = actor
        task.decided_at = now
        task.version += 1
        session.add(task)

    session.add(
        AuditEvent(
            actor=actor,
            action="bank_reversal",
            entity="statement_line",
            entity_id=str(credit.id),
            detail={
                "line_ref": credit.line_ref,
                "reversal_line_ref": reversal.line_ref,
                "previous_status": previous_status,
                "proposals_rejected": len(proposals),
                "review_tasks_closed": [task.id for task in tasks],
                "reason": reason,
            },
        )
    )
    log.info(
        "line %s reversed by the bank in line %s; %d review tasks closed",
        credit.line_ref,
        reversal.line_ref,
        len(tasks),
    )


def _open_task(
    session: Session, line: StatementLine, result: LineResult, reason: str
) -> ReviewTask:
    existing = session.exec(
        select(ReviewTask).where(
            ReviewTask.line_id == line.id, ReviewTask.status == "open"
        )
    ).first()
    if existing is not None:
        return existing
    task = ReviewTask(
        line_id=line.id,
        reason=reason[:500],
        priority=task_priority(line.amount, result.confidence),
    )
    session.add(task)
    return task


def task_priority(amount: Decimal, confidence: float) -> float:
    """Return a sort key: larger and less certain lines come first."""
    return float(amount) * (1.0 - min(max(confidence, 0.0), 1.0) + 0.05)
