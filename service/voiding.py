"""Voiding an import batch that should not have been imported.

Voiding deletes nothing. It changes these rows in the caller's transaction:

- the batch gets status `voided`, with who voided it and when;
- each of its lines gets status `voided`;
- each confirmed allocation of those lines is reversed by
  `booking.reverse`, so the orders they paid reopen and balance receipts
  get counter-entries;
- proposed allocations of those lines are rejected, and their open review
  tasks are closed;
- one audit event records the actor, the reason and the counts.

A voided line keeps its row but gives up its de-duplication key, which
becomes `void:<line id>:<key>`. The unique key (account, dedupe_key) then no
longer matches the transaction, so a corrected file with the same
transactions imports them as new lines. The voided rows, with the old key
inside the new one, stay for the audit trail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import update
from sqlmodel import Session, select

from models.errors import CashmatchError
from models.money import ZERO
from models.tables import (
    Allocation,
    AuditEvent,
    ImportBatch,
    ReviewTask,
    StatementLine,
    utcnow,
)
from service import booking

log = logging.getLogger("cashmatch.service")

VOIDED = "voided"
VOID_KEY_PREFIX = "void:"


class BatchNotFound(CashmatchError):
    """No import batch has the given id."""


class BatchAlreadyVoided(CashmatchError):
    """The import batch was voided before."""


class InvalidVoid(CashmatchError):
    """A void request that can never be carried out as given."""


@dataclass
class VoidReport:
    """Counts and ids of what voiding a batch undid."""

    batch_id: int
    file_name: str
    lines_voided: int = 0
    allocations_reversed: int = 0
    proposals_rejected: int = 0
    review_tasks_closed: int = 0
    orders_reopened: list[str] = field(default_factory=list)
    negative_balances: dict[str, Decimal] = field(default_factory=dict)
    bank_reversals: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return one sentence with the counts, for a clerk or an operator."""
        text = (
            f"batch {self.batch_id} ({self.file_name}) voided: "
            f"{self.lines_voided} lines, {self.allocations_reversed} allocations "
            f"reversed, {len(self.orders_reopened)} orders reopened, "
            f"{self.review_tasks_closed} review tasks closed"
        )
        for customer_id, balance in sorted(self.negative_balances.items()):
            text += (
                f"; customer {customer_id}'s prepayment balance is now "
                f"{balance}, check what it paid"
            )
        if self.bank_reversals:
            text += (
                f"; bank reversals voided: {', '.join(self.bank_reversals)}. "
                "The credits they reversed stay reversed, so check them"
            )
        return text


def void_batch(
    session: Session, batch_id: int, *, actor: str, reason: str
) -> VoidReport:
    """Void an import batch in the caller's transaction, as the module doc describes.

    Raises BatchNotFound for an unknown id, BatchAlreadyVoided for a batch
    voided before, and InvalidVoid for an empty reason. A reversal that
    fails leaves the caller to roll back, so nothing is half-voided.
    """
    reason = reason.strip()
    if not reason:
        raise InvalidVoid(
            f"a reason is required to void batch {batch_id}; say why it was wrong"
        )
    batch = _claim_batch(session, batch_id, actor)
    report = VoidReport(batch_id=batch.id, file_name=batch.file_name)
    reversed_allocations: list[Allocation] = []
    for line in _lines_of(session, batch.id):
        if line.status == "reversal":
            report.bank_reversals.append(line.line_ref)
        undone = _void_line(session, line, batch.id, actor, reason)
        reversed_allocations += undone.reversed
        report.proposals_rejected += undone.proposals_rejected
        report.review_tasks_closed += undone.review_tasks_closed
        report.lines_voided += 1
    report.allocations_reversed = len(reversed_allocations)
    report.orders_reopened = sorted(
        {a.order_id for a in reversed_allocations if a.order_id}
    )
    report.negative_balances = _negative_balances(
        session, {a.customer_id for a in reversed_allocations if a.customer_id}
    )

    _audit(session, batch, actor, reason, report)
    log.info(
        "voided batch %d (%s) by %s: %d lines, %d allocations reversed",
        batch.id,
        batch.file_name,
        actor,
        report.lines_voided,
        report.allocations_reversed,
    )
    for customer_id, balance in report.negative_balances.items():
        log.warning(
            "voiding batch %d left customer %s with a prepayment balance of %s",
            batch.id,
            customer_id,
            balance,
        )
    return report


def _claim_batch(session: Session, batch_id: int, actor: str) -> ImportBatch:
    """Mark the batch voided, or raise if it is unknown or voided already.

    The conditional update lets only one of two voids running at once win.
    """
    result = session.execute(
        update(ImportBatch)
        .where(ImportBatch.id == batch_id, ImportBatch.status != VOIDED)
        .values(status=VOIDED, voided_by=actor, voided_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        raise BatchNotFound(
            f"import batch {batch_id} not found; the import report and the "
            "audit log name the batch ids"
        )
    session.refresh(batch)
    if result.rowcount != 1:
        raise BatchAlreadyVoided(
            f"import batch {batch_id} was voided by {batch.voided_by} at "
            f"{batch.voided_at:%Y-%m-%d %H:%M} UTC; nothing was changed"
        )
    return batch


def _lines_of(session: Session, batch_id: int) -> list[StatementLine]:
    # FOR UPDATE makes a confirmation running at the same time wait on
    # PostgreSQL; SQLite holds the write lock for the whole transaction.
    query = (
        select(StatementLine)
        .where(StatementLine.batch_id == batch_id)
        .order_by(StatementLine.id)
        .with_for_update()
    )
    return list(session.exec(query).all())


@dataclass
class _LineUndone:
    """Allocations, proposals and review tasks that voiding one line undid."""

    reversed: list[Allocation]
    proposals_rejected: int
    review_tasks_closed: int


def _void_line(
    session: Session, line: StatementLine, batch_id: int, actor: str, reason: str
) -> _LineUndone:
    # NOTE: a bank reversal line (status `reversal`) reversed the allocations
    # of an earlier credit when it was matched. Voiding it does not rebook
    # that credit, so the report lists such lines for a clerk instead.
    confirmed = _allocations(session, line.id, "confirmed")
    if confirmed:
        booking.reverse(
            session,
            line,
            actor=actor,
            reopen_as=VOIDED,
            reason=f"import batch {batch_id} voided: {reason}",
        )
    proposals = _allocations(session, line.id, "proposed")
    for proposal in proposals:
        proposal.status = "rejected"
        session.add(proposal)
    tasks_closed = _close_tasks(session, line.id, actor)

    line.status = VOIDED
    line.dedupe_key = f"{VOID_KEY_PREFIX}{line.id}:{line.dedupe_key}"
    line.version += 1
    session.add(line)
    return _LineUndone(confirmed, len(proposals), tasks_closed)


def _allocations(session: Session, line_id: int, status: str) -> list[Allocation]:
    query = select(Allocation).where(
        Allocation.line_id == line_id, Allocation.status == status
    )
    return list(session.exec(query).all())


def _close_tasks(session: Session, line_id: int, actor: str) -> int:
    tasks = session.exec(
        select(ReviewTask).where(
            ReviewTask.line_id == line_id, ReviewTask.status == "open"
        )
    ).all()
    now = utcnow()
    for task in tasks:
        task.status = "closed"
        task.decided_by = actor
        task.decided_at = now
        task.version += 1
        session.add(task)
    return len(tasks)


def _negative_balances(session: Session, customers: set[str]) -> dict[str, Decimal]:
    """Return the customers whose prepayment balance fell below zero.

    A receipt that was already applied to an order leaves the balance
    negative once it is reversed: the order was paid with money that the
    voided line never brought in.
    """
    session.flush()
    balances = {cid: booking.balance_of(session, cid) for cid in sorted(customers)}
    return {cid: balance for cid, balance in balances.items() if balance < ZERO}


def _audit(
    session: Session, batch: ImportBatch, actor: str, reason: str, report: VoidReport
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action="void",
            entity="import_batch",
            entity_id=str(batch.id),
            detail={
                "reason": reason,
                "file": batch.file_name,
                "lines_voided": report.lines_voided,
                "allocations_reversed": report.allocations_reversed,
                "proposals_rejected": report.proposals_rejected,
                "review_tasks_closed": report.review_tasks_closed,
                "orders_reopened": report.orders_reopened,
                "negative_balances": {
                    cid: str(balance)
                    for cid, balance in report.negative_balances.items()
                },
                "bank_reversals": report.bank_reversals,
            },
        )
    )
