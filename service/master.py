"""Storing the ERP's master data: customers, orders and invoices.

The ERP owns orders. It sends each order's open amount as of its export;
Cashmatch keeps that as the base and subtracts what it confirmed after it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, select

from features.text import normalize_account
from ingest.records import CustomerRecord, InvoiceRecord, OrderRecord
from models.errors import CashmatchError
from models.money import ZERO
from models.tables import (
    Allocation,
    AuditEvent,
    Customer,
    CustomerAccount,
    CustomerAlias,
    Invoice,
    SalesOrder,
    StatementLine,
    utcnow,
)
from service import ledger

log = logging.getLogger("cashmatch.service")

ORDER_STATUSES = ("open", "partly_paid", "paid", "closed", "cancelled")
BOOKED_TARGETS = ("order", "fee")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UnknownCustomer(CashmatchError):
    """An order or invoice names a customer that was never loaded."""


class OrderCustomerConflict(CashmatchError):
    """An order update that would move an order with payments to another customer."""


class OrderOverAllocation(CashmatchError):
    """An order update that would leave less on an order than Cashmatch booked."""


@dataclass
class LoadReport:
    """How many master-data rows were created and updated.

    `released` lists the balance allocations that cancelled orders'
    payments moved to.
    """

    created: int = 0
    updated: int = 0
    released: list[Allocation] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated"


def upsert_customers(session: Session, records: Iterable[CustomerRecord]) -> LoadReport:
    """Create or update customers with their master aliases and accounts."""
    report = LoadReport()
    for record in records:
        customer = session.get(Customer, record.customer_id)
        if customer is None:
            customer = Customer(customer_id=record.customer_id, name=record.name)
            report.created += 1
        else:
            customer.name = record.name
            customer.updated_at = utcnow()
            report.updated += 1
        session.add(customer)
        session.flush()
        _replace_master_aliases(session, record)
        _add_master_accounts(session, record)
    log.info("loaded customers: %s", report)
    return report


def _replace_master_aliases(session: Session, record: CustomerRecord) -> None:
    existing = session.exec(
        select(CustomerAlias).where(CustomerAlias.customer_id == record.customer_id)
    ).all()
    known = {alias.alias: alias for alias in existing}
    wanted = {alias.strip() for alias in record.aliases if alias.strip()}
    for alias in existing:
        if alias.source == "master" and alias.alias not in wanted:
            session.delete(alias)
    for alias in wanted - known.keys():
        session.add(CustomerAlias(customer_id=record.customer_id, alias=alias))


def _add_master_accounts(session: Session, record: CustomerRecord) -> None:
    existing = session.exec(
        select(CustomerAccount).where(CustomerAccount.customer_id == record.customer_id)
    ).all()
    known = {account.account_number: account for account in existing}
    for raw in record.bank_accounts:
        number = normalize_account(raw)
        if not number:
            continue
        account = known.get(number)
        if account is None:
            # Two spellings of one account (spaces, dashes) normalise alike.
            known[number] = CustomerAccount(
                customer_id=record.customer_id, account_number=number
            )
            session.add(known[number])
        elif account.source != "master":
            account.source = "master"
            session.add(account)


def upsert_orders(
    session: Session,
    records: Iterable[OrderRecord],
    *,
    as_of: datetime | None = None,
    actor: str = "erp",
) -> LoadReport:
    """Create or update orders; `as_of` is when the ERP took its open amounts.

    Allocations that Cashmatch confirmed and balance applications it booked
    after `as_of` are taken off the ERP's open amount, because the ERP could
    not have known them yet. A cancelled order releases what was paid to it
    to the customer's prepayment balance.

    Raises OrderOverAllocation, and changes nothing, when an order would be
    left with less open than Cashmatch booked after `as_of`, or with an
    amount below what is confirmed on it.
    """
    as_of = _as_utc(as_of or utcnow())
    records = list(records)
    report = LoadReport()
    known_customers = set(session.exec(select(Customer.customer_id)).all())
    existing = _orders_by_id(session, [record.order_id for record in records])
    _check_customer_changes(session, records, existing)

    booked = _booked_since(session, list(existing), as_of)
    _check_over_allocation(session, records, existing, as_of=as_of, booked=booked)
    for record in records:
        if record.customer_id not in known_customers:
            raise UnknownCustomer(
                f"order {record.order_id} names customer {record.customer_id!r}, "
                "which is not loaded; load or send that customer first"
            )
        order = existing.get(record.order_id)
        if order is None:
            order = SalesOrder(
                order_id=record.order_id,
                customer_id=record.customer_id,
                order_date=record.order_date,
                amount=record.amount,
                erp_open_amount=record.open_amount,
                open_amount=record.open_amount,
            )
            existing[record.order_id] = order
            report.created += 1
        else:
            order.version += 1
            report.updated += 1
        _apply_order_record(order, record, as_of, booked.get(record.order_id, ZERO))
        session.add(order)
    session.flush()
    for record in records:
        if record.status.lower() == "cancelled":
            report.released += release_cancelled_order(
                session, record.order_id, actor=actor
            )
    log.info("loaded orders: %s", report)
    return report


def _as_utc(moment: datetime) -> datetime:
    # Booking times are stored in UTC. SQLite compares the stored wall-clock
    # text, so an `as_of` in another offset has to be converted first. A
    # naive `as_of` is taken as UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _check_customer_changes(
    session: Session, records: list[OrderRecord], existing: dict[str, SalesOrder]
) -> None:
    """Raise OrderCustomerConflict if a record moves an order with payments booked.

    The confirmed allocations and balance applications of such an order
    belong to its current customer, so they would point at another
    customer's order.
    """
    moved = [
        record
        for record in records
        if record.order_id in existing
        and existing[record.order_id].customer_id != record.customer_id
    ]
    if not moved:
        return

    paid = _paid_to_orders(session, [record.order_id for record in moved])
    for record in moved:
        amount = paid.get(record.order_id, ZERO)
        if amount == ZERO:
            continue
        owner = existing[record.order_id].customer_id
        raise OrderCustomerConflict(
            f"order {record.order_id} belongs to customer {owner} and has "
            f"{amount} booked to it in Cashmatch, so it cannot move to customer "
            f"{record.customer_id}. Reverse the allocations and balance "
            f"applications of {record.order_id} first, then send the order again"
        )


def _paid_to_orders(session: Session, order_ids: list[str]) -> dict[str, Decimal]:
    """Return what confirmed allocations and balance applications put on orders."""
    paid = _confirmed_on_orders(session, order_ids, BOOKED_TARGETS)
    applied = ledger.applied_since(session, order_ids, EPOCH)
    for order_id, amount in applied.items():
        paid[order_id] = paid.get(order_id, ZERO) + amount
    return paid


def _confirmed_on_orders(
    session: Session, order_ids: list[str], targets: tuple[str, ...]
) -> dict[str, Decimal]:
    """Return the sum of confirmed allocations of `targets` on each order."""
    found: dict[str, Decimal] = {}
    for start in range(0, len(order_ids), 500):
        query = (
            select(Allocation.order_id, func.sum(Allocation.amount))
            .where(
                Allocation.order_id.in_(order_ids[start : start + 500]),
                Allocation.status == "confirmed",
                Allocation.target.in_(targets),
            )
            .group_by(Allocation.order_id)
        )
        found.update(session.exec(query).all())
    return found


def _check_over_allocation(
    session: Session,
    records: list[OrderRecord],
    existing: dict[str, SalesOrder],
    *,
    as_of: datetime,
    booked: dict[str, Decimal],
) -> None:
    """Raise OrderOverAllocation if records leave orders with less than is booked.

    A cancelling record is checked only against its fee allocations. The
    cancellation releases the order allocations and balance applications to
    the prepayment balance, and a cancelled order takes no new bookings.
    """
    updates = [record for record in records if record.order_id in existing]
    cancelled_ids = [record.order_id for record in updates if _cancels(record)]
    updated_ids = [record.order_id for record in updates if not _cancels(record)]
    # A cancellation keeps the fee allocations on the order.
    fees = _confirmed_on_orders(session, cancelled_ids, ("fee",))
    paid = _paid_to_orders(session, updated_ids)

    problems = []
    for record in updates:
        if _cancels(record):
            since = ZERO
            confirmed = fees.get(record.order_id, ZERO)
        else:
            since = booked.get(record.order_id, ZERO)
            confirmed = paid.get(record.order_id, ZERO)
        problem = _over_allocation(record, as_of, since, confirmed)
        if problem:
            problems.append(problem)
    if problems:
        raise OrderOverAllocation(_over_allocation_message(problems))


def _cancels(record: OrderRecord) -> bool:
    return record.status.lower() == "cancelled"


def _over_allocation(
    record: OrderRecord, as_of: datetime, booked: Decimal, confirmed: Decimal
) -> str | None:
    reasons = []
    if record.open_amount < booked:
        reasons.append(
            f"the ERP's open amount is {record.open_amount} as of "
            f"{as_of.isoformat()}, but Cashmatch booked {booked} to it after that"
        )
    if record.amount < confirmed:
        reasons.append(
            f"its amount {record.amount} is less than the {confirmed} "
            "confirmed on it in Cashmatch"
        )
    if not reasons:
        return None
    return f"order {record.order_id}: " + ", and ".join(reasons)


def _over_allocation_message(problems: list[str]) -> str:
    listed = "; ".join(problems[:20])
    if len(problems) > 20:
        listed += f"; and {len(problems) - 20} more orders"
    return (
        f"{listed}. Nothing was changed. Send the order again with an as_of after "
        "Cashmatch's bookings or with the right amount and open amount, or "
        "reverse its allocations and balance applications first"
    )


def _orders_by_id(session: Session, order_ids: list[str]) -> dict[str, SalesOrder]:
    found: dict[str, SalesOrder] = {}
    for start in range(0, len(order_ids), 500):
        chunk = order_ids[start : start + 500]
        query = select(SalesOrder).where(SalesOrder.order_id.in_(chunk))
        found.update((order.order_id, order) for order in session.exec(query).all())
    return found


def _apply_order_record(
    order: SalesOrder, record: OrderRecord, as_of: datetime, booked: Decimal
) -> None:
    order.customer_id = record.customer_id
    order.order_date = record.order_date
    order.amount = record.amount
    order.currency = record.currency
    order.deposit_amount = record.deposit_amount
    order.erp_open_amount = record.open_amount
    order.erp_as_of = as_of
    order.updated_at = utcnow()
    # Only a cancelling record can go below zero here, because
    # _check_over_allocation rejects the others. Its payments are released.
    order.open_amount = max(record.open_amount - booked, ZERO)
    order.status = order_status(record.status.lower(), order)


def _booked_since(
    session: Session, order_ids: list[str], since: datetime
) -> dict[str, Decimal]:
    """Return what Cashmatch's bookings took off each order after `since`, net.

    An allocation confirmed after `since` takes its amount off. One that was
    confirmed before `since` and reversed after it gives its amount back,
    because the ERP's open amount as of `since` still lacks it.
    """
    found: dict[str, Decimal] = {}
    for start in range(0, len(order_ids), 500):
        chunk = order_ids[start : start + 500]
        found.update(session.exec(_confirmed_since(chunk, since)).all())
        for order_id, amount in session.exec(_reversed_since(chunk, since)).all():
            found[order_id] = found.get(order_id, ZERO) - amount
    for order_id, amount in ledger.applied_since(session, order_ids, since).items():
        found[order_id] = found.get(order_id, ZERO) + amount
    return found


def _confirmed_since(order_ids: list[str], since: datetime):
    return (
        select(Allocation.order_id, func.sum(Allocation.amount))
        .where(
            Allocation.order_id.in_(order_ids),
            Allocation.status == "confirmed",
            Allocation.target.in_(BOOKED_TARGETS),
            Allocation.confirmed_at > since,
        )
        .group_by(Allocation.order_id)
    )


def _reversed_since(order_ids: list[str], since: datetime):
    return (
        select(Allocation.order_id, func.sum(Allocation.amount))
        .where(
            Allocation.order_id.in_(order_ids),
            Allocation.status == "reversed",
            Allocation.target.in_(BOOKED_TARGETS),
            Allocation.confirmed_at <= since,
            Allocation.reversed_at > since,
        )
        .group_by(Allocation.order_id)
    )


def order_status(erp_status: str, order: SalesOrder) -> str:
    """Return the order's status after Cashmatch's own bookings."""
    if erp_status in ("closed", "cancelled"):
        return erp_status
    if order.open_amount == 0:
        return "paid"
    if order.open_amount < order.amount:
        return "partly_paid"
    return "open"


def upsert_invoices(session: Session, records: Iterable[InvoiceRecord]) -> LoadReport:
    """Create or update invoices; each names the orders it bills."""
    report = LoadReport()
    for record in records:
        customer_id = _invoice_customer(session, record)
        invoice = session.get(Invoice, record.invoice_id)
        if invoice is None:
            invoice = Invoice(invoice_id=record.invoice_id, amount=record.amount)
            report.created += 1
        else:
            report.updated += 1
        invoice.customer_id = customer_id
        invoice.amount = record.amount
        invoice.issue_date = record.issue_date
        invoice.order_ids = list(record.order_ids)
        session.add(invoice)
    session.flush()
    log.info("loaded invoices: %s", report)
    return report


def _invoice_customer(session: Session, record: InvoiceRecord) -> str | None:
    for order_id in record.order_ids:
        order = session.get(SalesOrder, order_id)
        if order is not None:
            return order.customer_id
    return None


# Cancelled orders -------------------------------------------------------------


def release_cancelled_order(
    session: Session, order_id: str, *, actor: str
) -> list[Allocation]:
    """Move what was paid to a cancelled order to the customer's balance.

    Each confirmed order allocation is reversed and replaced by a confirmed
    balance allocation of the same line and amount, with a ledger receipt,
    so the line stays fully allocated. Each balance application to the order
    is reversed in the ledger. Fee allocations stay, because the bank kept
    that money. Returns the new balance allocations; a second call finds
    nothing left to release.
    """
    order = session.get(SalesOrder, order_id)
    if order is None or order.status != "cancelled":
        return []
    paid = session.exec(
        select(Allocation).where(
            Allocation.order_id == order_id,
            Allocation.status == "confirmed",
            Allocation.target == "order",
        )
    ).all()
    released = [_release(session, allocation, actor) for allocation in paid]
    applications = ledger.release_applications(session, order_id, actor=actor)
    total = sum((a.amount for a in released), ZERO)
    total += sum((entry.amount for entry in applications), ZERO)
    if total:
        log.info(
            "order %s cancelled: %s released to %s's balance",
            order_id,
            total,
            order.customer_id,
        )
    return released


def _release(session: Session, allocation: Allocation, actor: str) -> Allocation:
    now = utcnow()
    allocation.status = "reversed"
    allocation.reversed_by = actor
    allocation.reversed_at = now
    session.add(allocation)
    moved = Allocation(
        line_id=allocation.line_id,
        customer_id=allocation.customer_id,
        target="balance",
        amount=allocation.amount,
        status="confirmed",
        confidence=allocation.confidence,
        decision=allocation.decision,
        model_version=allocation.model_version,
        confirmed_by=actor,
        confirmed_at=now,
    )
    session.add(moved)
    session.flush()

    line = session.get(StatementLine, allocation.line_id)
    ledger.record_receipt(
        session,
        moved,
        line,
        actor=actor,
        note=f"released from cancelled order {allocation.order_id}",
        order_id=allocation.order_id,
        booked_on=ledger.booking_today(session),
    )
    session.add(
        AuditEvent(
            actor=actor,
            action="release",
            entity="statement_line",
            entity_id=str(allocation.line_id),
            detail={
                "line_ref": line.line_ref if line else "",
                "order_id": allocation.order_id,
                "reversed": [_allocation_view(allocation)],
                "allocations": [_allocation_view(moved)],
            },
        )
    )
    return moved


def _allocation_view(allocation: Allocation) -> dict:
    return {
        "id": allocation.id,
        "target": allocation.target,
        "customer_id": allocation.customer_id,
        "order_id": allocation.order_id,
        "amount": str(allocation.amount),
    }
