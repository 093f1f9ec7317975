"""Review tasks and the decisions people make on statement lines.

The API and the review page share these functions. Every change to a line
goes through `service.booking`, whose conditional updates keep an order
from going below zero and a line from being allocated twice. A review task
is claimed by one clerk at a time. A claim ends after `claim_minutes`, so a
clerk who walks away does not block the line.

Each review decision is kept as an `AuditEvent` and as a `Label` with the
candidates that were shown, so training gets the accepted candidate and the
rejected ones.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import or_, update
from sqlmodel import Session, select

from matcher.anomaly import ALERTS
from models.errors import CashmatchError
from models.money import ZERO
from models.tables import (
    Allocation,
    AuditEvent,
    Customer,
    Label,
    ReviewTask,
    SalesOrder,
    StatementLine,
    utcnow,
)
from service import booking
from service.booking import InvalidAllocation, Part
from service.explain import LineNotFound
from service.matching import task_priority

log = logging.getLogger("cashmatch.service")

ACTIONS = ("accept", "choose", "split", "balance", "not_customer", "refund")
CONFIRMING_ACTIONS = ("accept", "choose", "split", "balance")
LINE_STATUS_AFTER = {"not_customer": "not_customer", "refund": "refund"}
SORTS = ("priority", "amount", "age", "uncertainty")
FLAG_SCORE = 0.5
EARLIER_LINES = 10


class TaskNotFound(CashmatchError):
    """No review task has the given id."""


class ReviewConflict(CashmatchError):
    """A review task is claimed by another clerk or already decided."""


@dataclass
class TaskFilter:
    """Filter of the open review tasks a queue shows; None means any."""

    account: str | None = None
    customer_id: str | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    date_from: date | None = None
    date_to: date | None = None
    anomaly: str | None = None
    decision: str | None = None


@dataclass
class TaskPage:
    """One page of the queue, with counts over every matching task."""

    items: list[tuple[ReviewTask, StatementLine]]
    total: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewDecision:
    """A clerk's decision on a review task.

    `candidate` is the index of a shown candidate for `choose`, and `accept`
    takes the first. `parts` are the allocations of a `split`. `customer_id`
    names the customer whose prepayment balance takes the whole line, for
    `balance`.
    """

    action: str
    candidate: int | None = None
    parts: tuple[Part, ...] = ()
    customer_id: str | None = None
    note: str = ""


@dataclass
class DecisionOutcome:
    """The line after a decision, what was booked and the label kept."""

    line: StatementLine
    allocations: list[Allocation]
    label: Label | None
    task: ReviewTask | None


def _is_audit(task: ReviewTask) -> bool:
    from service.auditing import is_audit_task

    return is_audit_task(task)


def _decide_audit(
    session: Session,
    task: ReviewTask,
    decision: ReviewDecision,
    *,
    actor: str,
    now: datetime,
) -> DecisionOutcome:
    """Record a decision on an audit task as its verdict.

    The line of an audit task is booked already, so accepting the suggestion
    says the automatic decision was right; any other choice says it was
    wrong and rebooks the line as chosen, or reverses it.
    """
    from service.auditing import record_verdict

    line = get_line(session, task.line_id)
    right = decision.action == "accept"
    parts = None
    if decision.action in CONFIRMING_ACTIONS and not right:
        parts = decision_parts(line, decision, _shown_candidates(line))
    outcome = record_verdict(
        session, task.id, actor=actor, right=right, note=decision.note or "", parts=parts
    )
    session.refresh(line)
    return DecisionOutcome(line=line, allocations=[], label=outcome.label, task=task)


def get_line(session: Session, line_id: int) -> StatementLine:
    """Return a stored line or raise LineNotFound."""
    line = session.get(StatementLine, line_id)
    if line is None:
        raise LineNotFound(f"statement line {line_id} does not exist")
    return line


def current_task(session: Session, line_id: int) -> ReviewTask | None:
    """Return the line's open review task, else its latest one, else None."""
    query = (
        select(ReviewTask)
        .where(ReviewTask.line_id == line_id)
        .order_by((ReviewTask.status == "open").desc(), ReviewTask.id.desc())
        .limit(1)
    )
    return session.exec(query).first()


def get_task(session: Session, task_id: int) -> ReviewTask:
    """Return a review task or raise TaskNotFound."""
    task = session.get(ReviewTask, task_id)
    if task is None:
        raise TaskNotFound(f"review task {task_id} does not exist")
    return task


def is_flagged(line: StatementLine) -> bool:
    """Tell whether a line has an alert or an anomaly score of at least 0.5."""
    reasons = set(line.anomaly_reasons or ())
    return bool(reasons & set(ALERTS)) or (line.anomaly_score or 0.0) >= FLAG_SCORE


# The queue -----------------------------------------------------------------


def list_tasks(
    session: Session,
    filters: TaskFilter | None = None,
    *,
    sort: str = "priority",
    limit: int = 50,
    offset: int = 0,
) -> TaskPage:
    """Return open review tasks that pass the filters, in queue order.

    `priority` puts large, uncertain lines first; `amount`, `age` (oldest
    booking date first) and `uncertainty` (lowest confidence first) sort by
    one of those alone.
    """
    if sort not in SORTS:
        raise ValueError(f"sort {sort!r} is not one of {', '.join(SORTS)}")
    found = _open_tasks(session, filters or TaskFilter())
    found.sort(key=_SORT_KEYS[sort])
    return TaskPage(
        items=found[offset : offset + limit],
        total=len(found),
        counts=_counts(found),
    )


def _open_tasks(
    session: Session, filters: TaskFilter
) -> list[tuple[ReviewTask, StatementLine]]:
    query = (
        select(ReviewTask, StatementLine)
        .join(StatementLine, StatementLine.id == ReviewTask.line_id)
        .where(ReviewTask.status == "open", *_line_conditions(filters))
    )
    rows = [tuple(row) for row in session.exec(query).all()]

    # NOTE: the customer and anomaly filters run in Python on the open
    # tasks, because the candidates and reasons are JSON columns. A queue of
    # tens of thousands of open tasks would need indexed columns for them.
    return [
        (task, line)
        for task, line in rows
        if _customer_fits(line, filters.customer_id)
        and _anomaly_fits(line, filters.anomaly)
    ]


def _line_conditions(filters: TaskFilter) -> list:
    conditions = []
    if filters.account:
        conditions.append(StatementLine.account == filters.account)
    if filters.decision:
        conditions.append(StatementLine.decision == filters.decision)
    if filters.min_amount is not None:
        conditions.append(StatementLine.amount >= filters.min_amount)
    if filters.max_amount is not None:
        conditions.append(StatementLine.amount <= filters.max_amount)
    if filters.date_from is not None:
        conditions.append(StatementLine.booking_date >= filters.date_from)
    if filters.date_to is not None:
        conditions.append(StatementLine.booking_date <= filters.date_to)
    return conditions


def _customer_fits(line: StatementLine, customer_id: str | None) -> bool:
    if not customer_id:
        return True
    if line.customer_id == customer_id:
        return True
    candidates = (line.suggestion or {}).get("candidates", [])
    return any(c.get("customer_id") == customer_id for c in candidates)


def _anomaly_fits(line: StatementLine, anomaly: str | None) -> bool:
    if not anomaly:
        return True
    if anomaly == "flagged":
        return is_flagged(line)
    if anomaly == "none":
        return not line.anomaly_reasons
    return anomaly in (line.anomaly_reasons or ())


_SORT_KEYS = {
    "priority": lambda pair: (-pair[0].priority, pair[1].booking_date, pair[0].id),
    "amount": lambda pair: (-pair[1].amount, pair[1].booking_date, pair[0].id),
    "age": lambda pair: (pair[1].booking_date, pair[0].id),
    "uncertainty": lambda pair: (pair[1].confidence or 0.0, pair[0].id),
}


def _counts(found: list[tuple[ReviewTask, StatementLine]]) -> dict[str, dict[str, int]]:
    decisions = Counter(line.decision or "" for _, line in found)
    accounts = Counter(line.account for _, line in found)
    flagged = sum(is_flagged(line) for _, line in found)
    return {
        "decision": dict(decisions),
        "account": dict(accounts),
        "anomaly": {"flagged": flagged, "not_flagged": len(found) - flagged},
    }


# Claims --------------------------------------------------------------------


def claim(
    session: Session,
    task_id: int,
    *,
    actor: str,
    minutes: int,
    now: datetime | None = None,
) -> ReviewTask:
    """Claim an open task for `minutes`, or raise ReviewConflict.

    A clerk may renew their own claim and take over a claim that expired.
    """
    now = now or utcnow()
    result = session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.id == task_id,
            ReviewTask.status == "open",
            _claimable(actor, now),
        )
        .values(
            claimed_by=actor,
            claim_expires_at=now + timedelta(minutes=minutes),
            version=ReviewTask.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    task = get_task(session, task_id)
    session.refresh(task)
    if result.rowcount != 1:
        raise ReviewConflict(_conflict_text(task, now))
    session.add(
        AuditEvent(
            actor=actor, action="claim", entity="review_task", entity_id=str(task_id)
        )
    )
    return task


def claim_next(
    session: Session,
    *,
    actor: str,
    minutes: int,
    filters: TaskFilter | None = None,
    now: datetime | None = None,
) -> ReviewTask | None:
    """Claim the first free task in queue order; None when none is left.

    A task that the actor has claimed already is not free, so repeated
    calls move on through the queue.

    On PostgreSQL the candidate rows are locked with FOR UPDATE SKIP LOCKED,
    so clerks asking at the same moment get different tasks instead of
    waiting on each other.
    """
    now = now or utcnow()
    page = list_tasks(session, filters, limit=100_000)
    for task, _ in page.items:
        if not _free_now(task, now):
            continue
        # Lock one row at a time: locking a whole batch would hide every
        # task of that batch from the other clerks until this one commits.
        query = (
            select(ReviewTask.id)
            .where(ReviewTask.id == task.id, ReviewTask.status == "open", _free(now))
            .with_for_update(skip_locked=True)
        )
        if session.exec(query).first() is not None:
            return claim(session, task.id, actor=actor, minutes=minutes, now=now)
    return None


def release(session: Session, task_id: int, *, actor: str) -> ReviewTask:
    """Give up the actor's claim on a task."""
    task = get_task(session, task_id)
    if task.claimed_by not in (None, actor):
        raise ReviewConflict(
            f"review task {task_id} is claimed by {task.claimed_by}, not {actor}"
        )
    task.claimed_by = None
    task.claim_expires_at = None
    task.version += 1
    session.add(task)
    session.flush()
    return task


def _claimable(actor: str, now: datetime):
    return or_(
        ReviewTask.claimed_by.is_(None),
        ReviewTask.claimed_by == actor,
        ReviewTask.claim_expires_at < now,
    )


def _free(now: datetime):
    return or_(ReviewTask.claimed_by.is_(None), ReviewTask.claim_expires_at < now)


def _free_now(task: ReviewTask, now: datetime) -> bool:
    if task.claimed_by is None:
        return True
    return task.claim_expires_at is not None and _aware(task.claim_expires_at) < now


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for values stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def _conflict_text(task: ReviewTask, now: datetime) -> str:
    if task.status != "open":
        return f"review task {task.id} is already {task.status} by {task.decided_by}"
    until = _aware(task.claim_expires_at) if task.claim_expires_at else now
    return (
        f"review task {task.id} is claimed by {task.claimed_by} until "
        f"{until:%Y-%m-%d %H:%M} UTC; pick another task"
    )


# Decisions -----------------------------------------------------------------


def decide(
    session: Session,
    task_id: int,
    decision: ReviewDecision,
    *,
    actor: str,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> DecisionOutcome:
    """Carry out a clerk's decision on a task and keep it as a label.

    `expected_version` is the line version the clerk saw. Raises
    ReviewConflict when another clerk has claimed or decided the task,
    AllocationConflict when the line or an order changed, and
    InvalidAllocation when the decision cannot be booked as given.
    """
    if decision.action not in ACTIONS:
        raise InvalidAllocation(
            f"action {decision.action!r} is not one of {', '.join(ACTIONS)}"
        )
    now = now or utcnow()
    audited = session.get(ReviewTask, task_id)
    if audited is not None and _is_audit(audited):
        return _decide_audit(session, audited, decision, actor=actor, now=now)
    task = _close_task(session, task_id, actor=actor, now=now)
    line = get_line(session, task.line_id)
    shown = _shown_candidates(line)

    allocations: list[Allocation] = []
    if decision.action in CONFIRMING_ACTIONS:
        parts = decision_parts(line, decision, shown)
        allocations = booking.confirm(
            session,
            line,
            parts,
            actor=actor,
            expected_version=expected_version,
            confidence=line.confidence,
            decision=line.decision,
            model_version=line.model_version,
        )
    else:
        _set_line_status(
            session, line, LINE_STATUS_AFTER[decision.action], expected_version
        )

    label = _keep_label(session, line, task, decision, allocations, shown, actor)
    _audit(
        session,
        actor,
        f"review_{decision.action}",
        "review_task",
        task.id,
        {
            "line_id": line.id,
            "line_ref": line.line_ref,
            "label_id": label.id,
            "note": decision.note,
        },
    )
    log.info("review task %s decided %s by %s", task.id, decision.action, actor)
    return DecisionOutcome(line, allocations, label, task)


def _close_task(
    session: Session, task_id: int, *, actor: str, now: datetime
) -> ReviewTask:
    """Mark the task decided, unless another clerk has claimed or decided it."""
    result = session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.id == task_id,
            ReviewTask.status == "open",
            _claimable(actor, now),
        )
        .values(
            status="decided",
            decided_by=actor,
            decided_at=now,
            claimed_by=actor,
            version=ReviewTask.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    task = get_task(session, task_id)
    session.refresh(task)
    if result.rowcount != 1:
        raise ReviewConflict(_conflict_text(task, now))
    return task


def _shown_candidates(line: StatementLine) -> list[dict]:
    return list((line.suggestion or {}).get("candidates", []))


def decision_parts(
    line: StatementLine, decision: ReviewDecision, shown: list[dict]
) -> list[Part]:
    """Return the allocations a confirming decision books."""
    if decision.action == "split":
        return list(decision.parts)
    if decision.action == "balance":
        if not decision.customer_id:
            raise InvalidAllocation("assigning a line to a balance needs a customer_id")
        return [Part("balance", line.amount, decision.customer_id)]

    index = 0 if decision.action == "accept" else decision.candidate
    if index is None or not 0 <= index < len(shown):
        raise InvalidAllocation(
            f"line {line.line_ref} shows {len(shown)} candidates; candidate "
            f"{index} does not exist"
        )
    return candidate_view_parts(shown[index], line_ref=line.line_ref)


def candidate_view_parts(view: dict, *, line_ref: str = "") -> list[Part]:
    """Return the allocations of a candidate as `candidate_view` shows it."""
    customer_id = view.get("customer_id")
    if view.get("kind") == "none" or not customer_id:
        raise InvalidAllocation(
            f"line {line_ref}: this candidate is 'no match'; choose another "
            "candidate, split the line or mark it as not a customer payment"
        )
    parts = [
        Part("order", Decimal(amount), customer_id, oid)
        for oid, amount in view["orders"]
    ]
    balance = Decimal(view.get("balance") or "0")
    if balance:
        parts.append(Part("balance", balance, customer_id))
    parts += [
        Part("fee", Decimal(amount), customer_id, oid)
        for oid, amount in view.get("fees", [])
    ]
    return parts


def _set_line_status(
    session: Session, line: StatementLine, status: str, expected_version: int | None
) -> None:
    conditions = [
        StatementLine.id == line.id,
        StatementLine.status.in_(booking.OPEN_LINE_STATUSES),
    ]
    if expected_version is not None:
        conditions.append(StatementLine.version == expected_version)
    result = session.execute(
        update(StatementLine)
        .where(*conditions)
        .values(status=status, version=StatementLine.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(line)
    if result.rowcount != 1:
        raise booking.AllocationConflict(
            f"line {line.line_ref} is {line.status} at version {line.version} "
            f"(you saw {expected_version}); reload it and decide again"
        )
    _reject_proposals(session, line.id)


def _reject_proposals(session: Session, line_id: int) -> None:
    proposals = session.exec(
        select(Allocation).where(
            Allocation.line_id == line_id, Allocation.status == "proposed"
        )
    ).all()
    for allocation in proposals:
        allocation.status = "rejected"
        session.add(allocation)


def _keep_label(
    session: Session,
    line: StatementLine,
    task: ReviewTask | None,
    decision: ReviewDecision,
    allocations: list[Allocation],
    shown: list[dict],
    actor: str,
) -> Label:
    chosen = {
        "candidate": 0 if decision.action == "accept" else decision.candidate,
        "customer_id": allocations[0].customer_id if allocations else None,
        "allocations": [_allocation_view(a) for a in allocations],
        "note": decision.note,
    }
    label = Label(
        line_id=line.id,
        review_task_id=task.id if task else None,
        action=decision.action,
        chosen=chosen,
        candidates=shown,
        model_version=line.model_version,
        actor=actor,
    )
    session.add(label)
    session.flush()
    return label


def _allocation_view(allocation: Allocation) -> dict:
    return {
        "id": allocation.id,
        "target": allocation.target,
        "customer_id": allocation.customer_id,
        "order_id": allocation.order_id,
        "amount": str(allocation.amount),
    }


# Corrections of booked lines ------------------------------------------------


def confirm_line(
    session: Session,
    line_id: int,
    parts: list[Part] | None,
    *,
    actor: str,
    expected_version: int | None,
) -> DecisionOutcome:
    """Confirm a line's allocations, by default the proposed suggestion.

    An open review task of the line is closed and the confirmation kept as
    a label, because it is a decision on a line the matcher was unsure of.
    """
    line = get_line(session, line_id)
    action = "split"
    if parts is None:
        parts = _proposed_parts(session, line)
        action = "accept"
    allocations = booking.confirm(
        session,
        line,
        parts,
        actor=actor,
        expected_version=expected_version,
        confidence=line.confidence,
        decision=line.decision,
        model_version=line.model_version,
    )
    task = _close_open_task(session, line, actor)
    label = None
    if task is not None:
        decision = ReviewDecision(action, parts=tuple(parts))
        label = _keep_label(
            session, line, task, decision, allocations, _shown_candidates(line), actor
        )
    return DecisionOutcome(line, allocations, label, task)


def _proposed_parts(session: Session, line: StatementLine) -> list[Part]:
    proposals = session.exec(
        select(Allocation).where(
            Allocation.line_id == line.id, Allocation.status == "proposed"
        )
    ).all()
    if not proposals:
        raise InvalidAllocation(
            f"line {line.line_ref} has no suggestion to accept; send the "
            "allocations to book"
        )
    return [Part(a.target, a.amount, a.customer_id, a.order_id) for a in proposals]


def _close_open_task(
    session: Session, line: StatementLine, actor: str
) -> ReviewTask | None:
    task = session.exec(
        select(ReviewTask).where(
            ReviewTask.line_id == line.id, ReviewTask.status == "open"
        )
    ).first()
    if task is None:
        return None
    task.status = "decided"
    task.decided_by = actor
    task.decided_at = utcnow()
    task.version += 1
    session.add(task)
    return task


def reverse_line(
    session: Session,
    line_id: int,
    *,
    actor: str,
    reason: str,
    expected_version: int | None,
) -> DecisionOutcome:
    """Undo what was decided on a line and send it back to the queue.

    A booked line has its allocations reversed, so the orders reopen and
    balance receipts get counter-entries. A line marked as not a customer
    payment or for refund becomes open again. A new review task is opened.
    """
    line = get_line(session, line_id)
    _bump_version(session, line, expected_version)
    allocations: list[Allocation] = []
    if line.status == "allocated":
        allocations = booking.reverse(session, line, actor=actor, reason=reason)
    elif line.status in LINE_STATUS_AFTER.values():
        line.status = "review"
        line.version += 1
        session.add(line)
    else:
        raise InvalidAllocation(
            f"line {line.line_ref} is {line.status}; only a booked line, or one "
            "marked as not a customer payment or for refund, can be undone"
        )
    task = _reopen_task(session, line, reason)
    label = _undo_label(session, line, task, allocations, actor, reason)
    _audit(
        session,
        actor,
        "undo",
        "statement_line",
        line.id,
        {
            "line_ref": line.line_ref,
            "reason": reason,
            "allocations": [a.id for a in allocations],
        },
    )
    return DecisionOutcome(line, allocations, label, task)


def change_line(
    session: Session,
    line_id: int,
    parts: list[Part],
    *,
    actor: str,
    reason: str,
    expected_version: int | None,
) -> DecisionOutcome:
    """Replace a booked line's allocations with new ones in one transaction."""
    undone = reverse_line(
        session, line_id, actor=actor, reason=reason, expected_version=expected_version
    )
    line = undone.line
    return confirm_line(
        session, line.id, parts, actor=actor, expected_version=line.version
    )


def _bump_version(
    session: Session, line: StatementLine, expected_version: int | None
) -> None:
    """Take the line's version as a lock: a concurrent change makes this fail."""
    seen = line.version if expected_version is None else expected_version
    result = session.execute(
        update(StatementLine)
        .where(StatementLine.id == line.id, StatementLine.version == seen)
        .values(version=StatementLine.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(line)
    if result.rowcount != 1:
        raise booking.AllocationConflict(
            f"line {line.line_ref} changed (version {line.version}, you saw "
            f"{seen}); reload it and decide again"
        )


def _reopen_task(session: Session, line: StatementLine, reason: str) -> ReviewTask:
    task = ReviewTask(
        line_id=line.id,
        reason=f"undone: {reason}"[:500],
        priority=task_priority(line.amount, line.confidence or 0.0),
    )
    session.add(task)
    session.flush()
    return task


def _undo_label(
    session: Session,
    line: StatementLine,
    task: ReviewTask,
    allocations: list[Allocation],
    actor: str,
    reason: str,
) -> Label:
    # NOTE: an undo label marks the earlier labels of this line as withdrawn;
    # the training dataset has to skip them.
    label = Label(
        line_id=line.id,
        review_task_id=task.id,
        action="undo",
        chosen={
            "allocations": [_allocation_view(a) for a in allocations],
            "note": reason,
        },
        candidates=_shown_candidates(line),
        model_version=line.model_version,
        actor=actor,
    )
    session.add(label)
    session.flush()
    return label


def record_rejection(
    session: Session, *, actor: str, line_id: int | None, action: str, reason: str
) -> None:
    """Keep a rejected attempt in the audit log, in the caller's new session."""
    _audit(
        session,
        actor,
        f"{action}_rejected",
        "statement_line",
        line_id or "",
        {
            "reason": reason[:500],
        },
    )


def _audit(
    session: Session, actor: str, action: str, entity: str, entity_id, detail: dict
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            detail=detail,
        )
    )


# What a task shows ------------------------------------------------------------


def task_context(session: Session, line: StatementLine) -> dict:
    """Return what a clerk needs beside a line: orders, balance, history.

    The customer is the line's booked customer, else the first shown
    candidate's customer.
    """
    customer_id = line.customer_id or _first_customer(line)
    customer = session.get(Customer, customer_id) if customer_id else None
    orders: list[SalesOrder] = []
    if customer_id:
        orders = list(
            session.exec(
                select(SalesOrder)
                .where(
                    SalesOrder.customer_id == customer_id,
                    SalesOrder.status.in_(booking.OPEN_ORDER_STATUSES),
                )
                .order_by(SalesOrder.order_date, SalesOrder.order_id)
            ).all()
        )
    return {
        "customer": customer,
        "open_orders": orders,
        "balance": booking.balance_of(session, customer_id) if customer_id else ZERO,
        "earlier_lines": earlier_lines(session, line),
    }


def _first_customer(line: StatementLine) -> str | None:
    for candidate in _shown_candidates(line):
        if candidate.get("customer_id"):
            return candidate["customer_id"]
    return None


def earlier_lines(session: Session, line: StatementLine) -> list[StatementLine]:
    """Return this payer's earlier lines, newest first, by account or name."""
    same_payer = []
    if line.counterparty_account:
        same_payer.append(
            StatementLine.counterparty_account == line.counterparty_account
        )
    if line.counterparty_name:
        same_payer.append(StatementLine.counterparty_name == line.counterparty_name)
    if not same_payer:
        return []
    query = (
        select(StatementLine)
        .where(or_(*same_payer), StatementLine.id != line.id)
        .where(StatementLine.booking_date <= line.booking_date)
        .order_by(StatementLine.booking_date.desc(), StatementLine.id.desc())
        .limit(EARLIER_LINES)
    )
    return list(session.exec(query).all())


def audit_log(
    session: Session,
    *,
    limit: int = 200,
    actor: str | None = None,
    action: str | None = None,
) -> list[AuditEvent]:
    """Return audit events, newest first."""
    query = select(AuditEvent)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    query = query.order_by(AuditEvent.id.desc()).limit(limit)
    return list(session.exec(query).all())
