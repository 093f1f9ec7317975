"""Booking allocations: confirm, reverse, and store the matcher's results.

Every booking runs inside the caller's transaction and changes the order and
the statement line with conditional updates (`... WHERE open_amount >= x`,
`... WHERE version = v`). Two clerks or two API calls acting at once can
therefore never take an order below zero or a line beyond its amount: the
second update matches no row and the whole booking is rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import case, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from features.text import normalize_account
from models.errors import AllocationConflict, CashmatchError
from models.money import ZERO
from models.tables import (
    Allocation,
    AuditEvent,
    CustomerAccount,
    SalesOrder,
    StatementLine,
    utcnow,
)
from service import ledger

log = logging.getLogger("cashmatch.service")

TARGETS = ("order", "balance", "fee")
OPEN_LINE_STATUSES = ("new", "review", "unmatched")
OPEN_ORDER_STATUSES = ("open", "partly_paid")


class InvalidAllocation(CashmatchError):
    """An allocation request that can never be booked as given."""


@dataclass(frozen=True)
class Part:
    """One allocation to book: money from a line to a target.

    For `fee`, `amount` is the shortfall booked as a bank fee on the order,
    not money from the line.
    """

    target: str
    amount: Decimal
    customer_id: str | None = None
    order_id: str | None = None


def line_money(parts: Iterable[Part]) -> Decimal:
    """Return the money the parts take from the line (fees excluded)."""
    return sum((p.amount for p in parts if p.target != "fee"), ZERO)


def validate_parts(line: StatementLine, parts: Sequence[Part]) -> None:
    """Raise InvalidAllocation unless the parts can settle the whole line."""
    if not parts:
        raise InvalidAllocation(f"line {line.line_ref}: no allocation given")
    if line.amount <= 0:
        raise InvalidAllocation(
            f"line {line.line_ref} is money out ({line.amount}); it cannot pay "
            "an order or a prepayment balance"
        )
    for part in parts:
        _validate_part(line, part)
    customers = {p.customer_id for p in parts}
    if len(customers) != 1:
        raise InvalidAllocation(
            f"line {line.line_ref}: allocations name {len(customers)} customers "
            f"({', '.join(sorted(map(str, customers)))}); split one line per customer"
        )
    total = line_money(parts)
    if total != line.amount:
        raise InvalidAllocation(
            f"line {line.line_ref}: allocations add up to {total}, the line is "
            f"{line.amount}; book the difference to the prepayment balance"
        )


def _validate_part(line: StatementLine, part: Part) -> None:
    if part.target not in TARGETS:
        raise InvalidAllocation(
            f"target {part.target!r} is not one of {', '.join(TARGETS)}"
        )
    if part.amount <= 0:
        raise InvalidAllocation(
            f"line {line.line_ref}: allocation amount {part.amount} must be positive"
        )
    if not part.customer_id:
        raise InvalidAllocation(f"line {line.line_ref}: allocation without customer")
    if part.target in ("order", "fee") and not part.order_id:
        raise InvalidAllocation(
            f"line {line.line_ref}: a {part.target} allocation needs an order_id"
        )


def confirm(
    session: Session,
    line: StatementLine,
    parts: Sequence[Part],
    *,
    actor: str,
    expected_version: int | None = None,
    confidence: float | None = None,
    decision: str | None = None,
    model_version: str | None = None,
) -> list[Allocation]:
    """Book the parts as confirmed allocations of the line.

    Raises AllocationConflict when the line was changed since
    `expected_version`, is already allocated, or an order has less open than
    the part takes. The caller's transaction must then be rolled back.
    """
    validate_parts(line, parts)
    _claim_line(session, line, expected_version, parts)
    for part in parts:
        if part.target in ("order", "fee"):
            _take_from_order(session, part, line)
    _reject_proposals(session, line.id)

    allocations = _add_allocations(
        session,
        line,
        parts,
        status="confirmed",
        confidence=confidence,
        decision=decision,
        model_version=model_version,
        confirmed_by=actor,
        confirmed_at=utcnow(),
    )
    _write_receipts(session, line, allocations, actor)
    _learn_account(session, line, parts[0].customer_id)
    _audit(session, actor, "confirm", line, allocations)
    return allocations


def _claim_line(
    session: Session,
    line: StatementLine,
    expected_version: int | None,
    parts: Sequence[Part],
) -> None:
    """Move the line to `allocated`, or raise if someone else got there first."""
    conditions = [
        StatementLine.id == line.id,
        StatementLine.status.in_(OPEN_LINE_STATUSES),
    ]
    if expected_version is not None:
        conditions.append(StatementLine.version == expected_version)
    claimed = session.execute(
        update(StatementLine)
        .where(*conditions)
        .values(
            status="allocated",
            customer_id=parts[0].customer_id,
            version=StatementLine.version + 1,
        )
        .returning(StatementLine.version)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is not None:
        _set_loaded(
            line,
            status="allocated",
            customer_id=parts[0].customer_id,
            version=claimed.version,
        )
        return

    session.refresh(line)
    if line.status not in OPEN_LINE_STATUSES:
        booked = _confirmed_total(session, line.id)
        over = booked + line_money(parts) - line.amount
        raise AllocationConflict(
            f"line {line.line_ref} is already {line.status}; booking "
            f"{line_money(parts)} more would over-allocate it by {over}. "
            "Reverse the earlier allocation first"
        )
    raise AllocationConflict(
        f"line {line.line_ref} changed (version {line.version}, you saw "
        f"{expected_version}); reload it and decide again"
    )


def _confirmed_total(session: Session, line_id: int) -> Decimal:
    amounts = session.exec(
        select(Allocation.amount).where(
            Allocation.line_id == line_id,
            Allocation.status == "confirmed",
            Allocation.target != "fee",
        )
    ).all()
    return sum(amounts, ZERO)


def _take_from_order(session: Session, part: Part, line: StatementLine) -> None:
    order = session.get(SalesOrder, part.order_id)
    if order is None:
        raise InvalidAllocation(f"order {part.order_id} does not exist")
    if order.customer_id != part.customer_id:
        raise InvalidAllocation(
            f"order {part.order_id} belongs to customer {order.customer_id}, "
            f"not {part.customer_id}"
        )
    if order.currency != line.currency:
        raise InvalidAllocation(
            f"order {part.order_id} is in {order.currency} and line "
            f"{line.line_ref} in {line.currency}; book it to the balance instead"
        )
    remaining = SalesOrder.open_amount - part.amount
    taken = session.execute(
        update(SalesOrder)
        .where(
            SalesOrder.order_id == part.order_id,
            SalesOrder.status.in_(OPEN_ORDER_STATUSES),
            SalesOrder.open_amount >= part.amount,
        )
        .values(
            open_amount=remaining,
            status=case((remaining == 0, "paid"), else_="partly_paid"),
            version=SalesOrder.version + 1,
            updated_at=utcnow(),
        )
        .returning(SalesOrder.open_amount, SalesOrder.status, SalesOrder.version)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        session.refresh(order)
        raise AllocationConflict(
            f"order {part.order_id} has {order.open_amount} open ({order.status}); "
            f"it cannot take {part.amount}"
        )
    _set_loaded(
        order,
        open_amount=taken.open_amount,
        status=taken.status,
        version=taken.version,
    )


def _set_loaded(row, **values) -> None:
    """Set attributes to what an UPDATE just wrote, without marking them dirty."""
    for name, value in values.items():
        set_committed_value(row, name, value)


def _reject_proposals(session: Session, line_id: int) -> None:
    proposals = session.exec(
        select(Allocation).where(
            Allocation.line_id == line_id, Allocation.status == "proposed"
        )
    ).all()
    for allocation in proposals:
        allocation.status = "rejected"
        session.add(allocation)


def _write_receipts(
    session: Session, line: StatementLine, allocations: list[Allocation], actor: str
) -> None:
    for allocation in allocations:
        if allocation.target == "balance":
            ledger.record_receipt(session, allocation, line, actor=actor)


def _learn_account(session: Session, line: StatementLine, customer_id: str) -> None:
    number = normalize_account(line.counterparty_account)
    if not number:
        return
    account = session.exec(
        select(CustomerAccount).where(
            CustomerAccount.customer_id == customer_id,
            CustomerAccount.account_number == number,
        )
    ).first()
    if account is None:
        account = CustomerAccount(
            customer_id=customer_id, account_number=number, source="learned"
        )
    account.times_seen += 1
    session.add(account)


def propose(
    session: Session,
    line: StatementLine,
    parts: Sequence[Part],
    *,
    confidence: float | None,
    decision: str,
    model_version: str | None,
) -> list[Allocation]:
    """Store a suggestion as proposed allocations; nothing is booked."""
    _reject_proposals(session, line.id)
    return _add_allocations(
        session,
        line,
        parts,
        status="proposed",
        confidence=confidence,
        decision=decision,
        model_version=model_version,
    )


def _add_allocations(
    session: Session, line: StatementLine, parts: Sequence[Part], **fields
) -> list[Allocation]:
    allocations = [
        Allocation(
            line_id=line.id,
            customer_id=part.customer_id,
            order_id=part.order_id,
            target=part.target,
            amount=part.amount,
            **fields,
        )
        for part in parts
    ]
    session.add_all(allocations)
    session.flush()
    return allocations


def reverse(
    session: Session,
    line: StatementLine,
    *,
    actor: str,
    reason: str,
    reopen_as: str = "review",
) -> list[Allocation]:
    """Reverse a line's confirmed allocations; the orders they paid reopen.

    Nothing is deleted: each allocation is marked reversed, each order gets
    its money back, and each balance receipt gets a counter-entry.
    """
    allocations = session.exec(
        select(Allocation).where(
            Allocation.line_id == line.id, Allocation.status == "confirmed"
        )
    ).all()
    if not allocations:
        raise InvalidAllocation(f"line {line.line_ref} has no confirmed allocation")

    now = utcnow()
    for allocation in allocations:
        if allocation.target in ("order", "fee"):
            _give_back_to_order(session, allocation)
        if allocation.target == "balance":
            ledger.record_receipt_reversal(
                session, allocation, actor=actor, note="allocation reversed"
            )
        allocation.status = "reversed"
        allocation.reversed_by = actor
        allocation.reversed_at = now
        session.add(allocation)

    line.status = reopen_as
    line.customer_id = None
    line.version += 1
    session.add(line)
    session.flush()
    _audit(session, actor, "reverse", line, allocations, reason=reason)
    return list(allocations)


def _give_back_to_order(session: Session, allocation: Allocation) -> None:
    session.execute(
        update(SalesOrder)
        .where(SalesOrder.order_id == allocation.order_id)
        .values(
            open_amount=SalesOrder.open_amount + allocation.amount,
            version=SalesOrder.version + 1,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    order = session.get(SalesOrder, allocation.order_id)
    session.refresh(order)
    if order.status in OPEN_ORDER_STATUSES + ("paid",):
        order.status = "open" if order.open_amount >= order.amount else "partly_paid"
        session.add(order)


def _audit(
    session: Session,
    actor: str,
    action: str,
    line: StatementLine,
    allocations: Sequence[Allocation],
    **detail,
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            entity="statement_line",
            entity_id=str(line.id),
            detail={
                "line_ref": line.line_ref,
                "allocations": [
                    {
                        "id": a.id,
                        "target": a.target,
                        "customer_id": a.customer_id,
                        "order_id": a.order_id,
                        "amount": str(a.amount),
                    }
                    for a in allocations
                ],
                **detail,
            },
        )
    )


def balance_of(session: Session, customer_id: str) -> Decimal:
    """Return a customer's prepayment balance: the sum of its ledger entries."""
    return ledger.balance(session, customer_id)
