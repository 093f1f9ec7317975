"""The prepayment ledger: an append-only list of entries per customer.

A customer's prepayment balance is the sum of their entries and is never
stored. Each entry has a kind and a signed amount:

| kind          | sign | written when                                          |
| ------------- | ---- | ----------------------------------------------------- |
| `receipt`     | +    | a line's money is booked to the balance               |
| `application` | -    | a clerk or the ERP applies the balance to an order    |
| `refund`      | -    | an approved refund leaves the balance                 |
| `fee`         | -    | a bank fee is charged to the customer's balance       |
| `write_off`   | -    | an approved write-off clears (part of) a balance      |
| `reversal`    | ±    | an earlier entry is undone; `reverses_id` names it    |

Every entry names its actor and either the statement line it came from or
the decision that made it: the order or invoice it was applied to, or the
refund, write-off or fee request whose `entry_id` it is. Nothing is deleted
or changed. A mistake is reversed by a new entry that names the entry it
corrects.

No entry is dated (`booked_on`) in a closed month: an explicit date there
raises MonthClosed, and automatic entries move to the next open month.
`service.controls` closes months and runs the approvals; the errors and
settings both modules share are defined here.

Actions that take money from a balance lock the customer's row first. Two
actions at once therefore run one after the other, and the second one reads
the balance after the first one's entries. On SQLite every write transaction holds the
database lock from its start, with the same effect.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, text, update
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from models.errors import AllocationConflict, CashmatchError
from models.money import ZERO
from models.tables import (
    Allocation,
    AuditEvent,
    ClosedMonth,
    Customer,
    Invoice,
    LedgerEntry,
    LedgerRequest,
    SalesOrder,
    StatementLine,
    utcnow,
)
from service.settings import Settings

log = logging.getLogger("cashmatch.service")

# The PostgreSQL advisory lock that orders bookings with month closes.
MONTH_LOCK = 0x434D4D4C
_MONTHS_LOCKED = "cashmatch.months_locked"

KINDS = ("receipt", "application", "refund", "fee", "write_off", "reversal")
# Entries a clerk may reverse directly. A receipt is undone with its line,
# so the allocation and the ledger stay in step.
REVERSIBLE_KINDS = ("application", "fee", "write_off")
OPEN_ORDER_STATUSES = ("open", "partly_paid")
OPEN_LINE_STATUSES = ("new", "review", "unmatched")
FEED_ACTIONS = ("confirm", "reverse", "release")
# Years 1000 to 2999: a month's end and the month after it stay valid dates.
MONTH_PATTERN = re.compile(r"^([12]\d{3})-(0[1-9]|1[0-2])$")


# Errors ----------------------------------------------------------------------


class LedgerError(CashmatchError):
    """Base of the ledger's errors; `status_code` and `code` feed the API."""

    status_code = 400
    code = "ledger_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class LedgerNotFound(LedgerError):
    """A customer, order, invoice, line, entry or request does not exist."""

    status_code = 404
    code = "not_found"


class InvalidLedgerRequest(LedgerError):
    """A ledger action that can never be carried out as given."""

    status_code = 422
    code = "invalid_ledger_request"


class MonthClosed(LedgerError):
    """A booking dated in a closed month."""

    status_code = 409
    code = "month_closed"


class ApprovalConflict(LedgerError):
    """A request that is no longer pending, or approved by its own requester."""

    status_code = 409
    code = "approval_conflict"


class OwnRequest(ApprovalConflict):
    """A user tried to approve a request they made themselves."""

    status_code = 403
    code = "own_request"


class BalanceConflict(LedgerError, AllocationConflict):
    """An action would take a balance below zero or an order below zero."""

    status_code = 409
    code = "balance_conflict"


class InvoiceNotCovered(LedgerError):
    """An invoice beyond what its customer paid, with the `reject` policy."""

    status_code = 409
    code = "invoice_not_covered"


def local_today(time_zone: str) -> date:
    """Return today's date in the company's time zone."""
    return datetime.now(ZoneInfo(time_zone)).date()


# Closed months -------------------------------------------------------------------


def month_of(day: date) -> str:
    """Return the month of a day as `YYYY-MM`."""
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(text: str) -> date:
    """Return the first day of a `YYYY-MM` month, or raise InvalidLedgerRequest."""
    found = MONTH_PATTERN.match(text.strip())
    if found is None:
        raise InvalidLedgerRequest(
            f"month {text!r} is not a month like 2025-06; write YYYY-MM"
        )
    return date(int(found.group(1)), int(found.group(2)), 1)


def month_end(first: date) -> date:
    """Return the last day of the month that starts on `first`."""
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def closed_months(session: Session) -> list[ClosedMonth]:
    """Return the closed months, oldest first."""
    return list(session.exec(select(ClosedMonth).order_by(ClosedMonth.month)).all())


def is_closed(session: Session, day: date) -> bool:
    """Tell whether the month of `day` is closed."""
    lock_months(session)
    return session.get(ClosedMonth, month_of(day)) is not None


def lock_months(session: Session, *, exclusive: bool = False) -> None:
    """Order this transaction with the closing of months, on PostgreSQL.

    Bookings take the lock shared before they read which months are closed,
    and closing a month takes it exclusive. So a close waits for bookings
    that read its month as open, and bookings after it read it as closed.
    SQLite lets one writer in at a time, which orders them already. The
    lock is held to the end of the transaction.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    connection = session.connection()
    transaction = session.get_transaction()
    if session.info.get(_MONTHS_LOCKED) is transaction and not exclusive:
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    connection.execute(text(f"SELECT {function}(:key)"), {"key": MONTH_LOCK})
    session.info[_MONTHS_LOCKED] = transaction


def check_open(session: Session, day: date, *, what: str) -> None:
    """Raise MonthClosed when `day` falls in a closed month."""
    if is_closed(session, day):
        raise MonthClosed(
            f"{what} is dated {day.isoformat()}, but {month_of(day)} is closed; "
            "date it in an open month, where a correction names the entry it "
            "corrects"
        )


def open_day(session: Session, day: date) -> date:
    """Return `day`, or the first day of the first open month after it.

    Automatic bookings use this: money that arrived in a closed month is
    booked at the start of the next open month instead.
    """
    lock_months(session)
    closed = {row.month for row in closed_months(session)}
    while month_of(day) in closed:
        day = month_end(day.replace(day=1)) + timedelta(days=1)
    return day


def claim_open_line(session: Session, line: StatementLine, status: str) -> bool:
    """Move an open line to `status`, unless a concurrent change moved it first.

    The update is conditional on the line still being open, so of two
    transactions that race for one line exactly one wins. The line is
    refreshed either way.
    """
    claimed = session.execute(
        update(StatementLine)
        .where(
            StatementLine.id == line.id,
            StatementLine.status.in_(OPEN_LINE_STATUSES),
        )
        .values(status=status, version=StatementLine.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(line)
    return claimed.rowcount == 1


# Balances ----------------------------------------------------------------------


def balance(session: Session, customer_id: str) -> Decimal:
    """Return a customer's prepayment balance: the sum of their entries."""
    total = session.exec(
        select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.customer_id == customer_id
        )
    ).one()
    return total if total is not None else ZERO


def balances(session: Session) -> dict[str, Decimal]:
    """Return every customer's balance that has at least one entry."""
    rows = session.exec(
        select(LedgerEntry.customer_id, func.sum(LedgerEntry.amount)).group_by(
            LedgerEntry.customer_id
        )
    ).all()
    return {customer_id: total for customer_id, total in rows}


def get_customer(session: Session, customer_id: str, *, lock: bool = False):
    """Return a customer, locked for update when `lock`, or raise LedgerNotFound."""
    query = select(Customer).where(Customer.customer_id == customer_id)
    if lock:
        query = query.with_for_update()
    customer = session.exec(query).first()
    if customer is None:
        raise LedgerNotFound(
            f"customer {customer_id!r} does not exist", code="customer_not_found"
        )
    return customer


@dataclass
class LedgerView:
    """A customer's balance, ledger entries (oldest first) and open requests."""

    customer_id: str
    name: str
    balance: Decimal
    entries: list[LedgerEntry]
    requests: list[LedgerRequest] = field(default_factory=list)


def customer_ledger(session: Session, customer_id: str) -> LedgerView:
    """Return a customer's ledger, or raise LedgerNotFound."""
    customer = get_customer(session, customer_id)
    entries = list(
        session.exec(
            select(LedgerEntry)
            .where(LedgerEntry.customer_id == customer_id)
            .order_by(LedgerEntry.id)
        ).all()
    )
    # Open requests wait for approval, or are refunds not paid out yet.
    unpaid_refund = (
        (LedgerRequest.kind == "refund")
        & (LedgerRequest.status == "approved")
        & LedgerRequest.payment_line_id.is_(None)
    )
    requests = list(
        session.exec(
            select(LedgerRequest)
            .where(
                LedgerRequest.customer_id == customer_id,
                (LedgerRequest.status == "pending") | unpaid_refund,
            )
            .order_by(LedgerRequest.id)
        ).all()
    )
    total = sum((entry.amount for entry in entries), ZERO)
    return LedgerView(customer_id, customer.name, total, entries, requests)


def entry_day(entry: LedgerEntry) -> date:
    """Return the day an entry counts for; old rows without one use created_at."""
    return entry.booked_on or entry.created_at.date()


# Writing entries -------------------------------------------------------------------


def add_entry(
    session: Session,
    *,
    customer_id: str,
    kind: str,
    amount: Decimal,
    actor: str,
    booked_on: date,
    note: str = "",
    line_id: int | None = None,
    allocation_id: int | None = None,
    order_id: str | None = None,
    invoice_id: str | None = None,
    reverses_id: int | None = None,
) -> LedgerEntry:
    """Append one entry; raise MonthClosed when `booked_on` is in a closed month."""
    if kind not in KINDS:
        raise InvalidLedgerRequest(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    check_open(session, booked_on, what=f"a {kind} of {amount}")
    entry = LedgerEntry(
        customer_id=customer_id,
        kind=kind,
        amount=amount,
        line_id=line_id,
        allocation_id=allocation_id,
        order_id=order_id,
        invoice_id=invoice_id,
        reverses_id=reverses_id,
        booked_on=booked_on,
        actor=actor,
        note=note[:500],
    )
    session.add(entry)
    session.flush()
    return entry


def record_receipt(
    session: Session,
    allocation: Allocation,
    line: StatementLine,
    *,
    actor: str,
    note: str | None = None,
    order_id: str | None = None,
    booked_on: date | None = None,
) -> LedgerEntry:
    """Write the receipt of a balance allocation, by default dated by its line.

    A line dated in a closed month is booked on the first day of the next
    open month, because nothing may be dated in a closed month.
    """
    return add_entry(
        session,
        customer_id=allocation.customer_id,
        kind="receipt",
        amount=allocation.amount,
        actor=actor,
        booked_on=booked_on or open_day(session, line.booking_date),
        note=note if note is not None else f"from line {line.line_ref}",
        line_id=line.id,
        allocation_id=allocation.id,
        order_id=order_id,
    )


def record_receipt_reversal(
    session: Session, allocation: Allocation, *, actor: str, note: str
) -> LedgerEntry:
    """Write the counter-entry of a reversed balance allocation, dated today."""
    receipt = session.exec(
        select(LedgerEntry).where(
            LedgerEntry.allocation_id == allocation.id, LedgerEntry.kind == "receipt"
        )
    ).first()
    return add_entry(
        session,
        customer_id=allocation.customer_id,
        kind="reversal",
        amount=-allocation.amount,
        actor=actor,
        booked_on=booking_today(session),
        note=note,
        line_id=allocation.line_id,
        allocation_id=allocation.id,
        reverses_id=receipt.id if receipt else None,
    )


def booking_today(session: Session) -> date:
    """Return today in the company's time zone, or the next open day."""
    return open_day(session, local_today(Settings().time_zone))


def _booking_day(session: Session, booked_on: date | None, today: date) -> date:
    """Return the day a clerk's action is booked: as asked, or today."""
    if booked_on is None:
        return open_day(session, today)
    check_open(session, booked_on, what="the booking")
    return booked_on


# Applying a balance --------------------------------------------------------------


def apply_balance(
    session: Session,
    *,
    customer_id: str,
    amount: Decimal,
    actor: str,
    today: date,
    order_id: str | None = None,
    invoice_id: str | None = None,
    note: str = "",
    booked_on: date | None = None,
) -> list[LedgerEntry]:
    """Apply part of a customer's balance to one order or to an invoice's orders.

    Raises BalanceConflict when the balance or an order's open amount is
    smaller than what would be taken; nothing is then booked. An invoice's
    orders are paid in the invoice's order, each up to its open amount.
    """
    if (order_id is None) == (invoice_id is None):
        raise InvalidLedgerRequest(
            "name either an order_id or an invoice_id to apply a balance to"
        )
    if amount <= 0:
        raise InvalidLedgerRequest(f"an application of {amount} must be positive")
    day = _booking_day(session, booked_on, today)
    get_customer(session, customer_id, lock=True)
    check_balance(session, customer_id, amount, what="apply")

    if order_id is not None:
        shares = [(_order_of(session, order_id, customer_id), amount)]
    else:
        shares = _invoice_shares(session, invoice_id, customer_id, amount)
    entries = []
    for order, share in shares:
        _take_from_order(session, order, share)
        entries.append(
            add_entry(
                session,
                customer_id=customer_id,
                kind="application",
                amount=-share,
                actor=actor,
                booked_on=day,
                note=note or f"applied to order {order.order_id}",
                order_id=order.order_id,
                invoice_id=invoice_id,
            )
        )
    audit_entries(session, actor, "apply", customer_id, entries)
    log.info(
        "%s applied %s of %s's balance to %s",
        actor,
        amount,
        customer_id,
        order_id or f"invoice {invoice_id}",
    )
    return entries


def check_balance(
    session: Session, customer_id: str, amount: Decimal, *, what: str
) -> None:
    available = balance(session, customer_id)
    if amount > available:
        raise BalanceConflict(
            f"customer {customer_id}'s prepayment balance is {available}; "
            f"cannot {what} {amount}"
        )


def _order_of(session: Session, order_id: str, customer_id: str) -> SalesOrder:
    order = session.get(SalesOrder, order_id)
    if order is None:
        raise LedgerNotFound(
            f"order {order_id!r} does not exist", code="order_not_found"
        )
    if order.customer_id != customer_id:
        raise InvalidLedgerRequest(
            f"order {order_id} belongs to customer {order.customer_id}, not "
            f"{customer_id}; apply that customer's balance"
        )
    return order


def _invoice_shares(
    session: Session, invoice_id: str, customer_id: str, amount: Decimal
) -> list[tuple[SalesOrder, Decimal]]:
    invoice = get_invoice(session, invoice_id)
    orders = [
        _order_of(session, oid, customer_id)
        for oid in invoice.order_ids or ()
        if session.get(SalesOrder, oid) is not None
    ]
    shares = []
    left = amount
    for order in orders:
        if left == 0:
            break
        if order.status not in OPEN_ORDER_STATUSES or order.open_amount <= 0:
            continue
        share = min(left, order.open_amount)
        shares.append((order, share))
        left -= share
    if left > 0:
        open_total = amount - left
        raise BalanceConflict(
            f"invoice {invoice_id}'s orders have {open_total} open; cannot apply "
            f"{amount} to it"
        )
    return shares


def _take_from_order(session: Session, order: SalesOrder, amount: Decimal) -> None:
    """Lower an order's open amount, unless that would take it below zero."""
    remaining = SalesOrder.open_amount - amount
    taken = session.execute(
        update(SalesOrder)
        .where(
            SalesOrder.order_id == order.order_id,
            SalesOrder.status.in_(OPEN_ORDER_STATUSES),
            SalesOrder.open_amount >= amount,
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
        raise BalanceConflict(
            f"order {order.order_id} has {order.open_amount} open ({order.status}); "
            f"it cannot take {amount}"
        )
    for name in ("open_amount", "status", "version"):
        set_committed_value(order, name, getattr(taken, name))


def _give_back_to_order(session: Session, order_id: str, amount: Decimal) -> None:
    """Reopen an order by `amount`, unless it was cancelled or closed since."""
    order = session.get(SalesOrder, order_id)
    if order is None or order.status not in OPEN_ORDER_STATUSES + ("paid",):
        return
    session.execute(
        update(SalesOrder)
        .where(SalesOrder.order_id == order_id)
        .values(
            open_amount=SalesOrder.open_amount + amount,
            version=SalesOrder.version + 1,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(order)
    order.status = "open" if order.open_amount >= order.amount else "partly_paid"
    session.add(order)


# Reversing entries ---------------------------------------------------------------


def reversed_amount(session: Session, entry_id: int) -> Decimal:
    """Return how much of an entry its reversals have undone, as a positive sum."""
    total = session.exec(
        select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.reverses_id == entry_id, LedgerEntry.kind == "reversal"
        )
    ).one()
    return abs(total) if total is not None else ZERO


def reverse_entry(
    session: Session,
    entry_id: int,
    *,
    actor: str,
    reason: str,
    today: date,
    amount: Decimal | None = None,
    booked_on: date | None = None,
) -> LedgerEntry:
    """Undo all or part of an application, fee or write-off with a new entry.

    The reversal is dated in an open month and names the entry it corrects.
    An application's order gets the money back as open amount.
    """
    entry = get_entry(session, entry_id)
    if entry.kind not in REVERSIBLE_KINDS:
        raise InvalidLedgerRequest(_not_reversible(entry))
    if not reason.strip():
        raise InvalidLedgerRequest(f"a reason is required to reverse entry {entry_id}")
    day = _booking_day(session, booked_on, today)
    get_customer(session, entry.customer_id, lock=True)

    left = abs(entry.amount) - reversed_amount(session, entry.id)
    amount = left if amount is None else amount
    if amount <= 0 or amount > left:
        raise InvalidLedgerRequest(
            f"entry {entry_id} has {left} left to reverse; cannot reverse {amount}"
        )
    if entry.kind == "application" and entry.order_id:
        _give_back_to_order(session, entry.order_id, amount)
    if entry.kind == "fee" and entry.line_id and amount == left:
        _reopen_money_out(session, entry.line_id)
    reversal = add_entry(
        session,
        customer_id=entry.customer_id,
        kind="reversal",
        amount=amount,
        actor=actor,
        booked_on=day,
        note=f"reverses entry {entry.id}: {reason}",
        order_id=entry.order_id,
        invoice_id=entry.invoice_id,
        line_id=entry.line_id,
        reverses_id=entry.id,
    )
    audit_entries(session, actor, "reverse_entry", entry.customer_id, [reversal])
    return reversal


def _not_reversible(entry: LedgerEntry) -> str:
    if entry.kind == "receipt":
        return (
            f"entry {entry.id} is a receipt from a statement line; undo that "
            "line's allocation instead"
        )
    if entry.kind == "refund":
        return f"entry {entry.id} is a refund; cancel its request while it is unpaid"
    return f"entry {entry.id} is a {entry.kind}, which cannot be reversed"


def get_entry(session: Session, entry_id: int) -> LedgerEntry:
    """Return a ledger entry or raise LedgerNotFound."""
    entry = session.get(LedgerEntry, entry_id)
    if entry is None:
        raise LedgerNotFound(
            f"ledger entry {entry_id} does not exist", code="entry_not_found"
        )
    return entry


def release_applications(
    session: Session, order_id: str, *, actor: str
) -> list[LedgerEntry]:
    """Give back to the balance every application to a cancelled order."""
    applications = session.exec(
        select(LedgerEntry)
        .where(LedgerEntry.order_id == order_id, LedgerEntry.kind == "application")
        .order_by(LedgerEntry.id)
    ).all()
    released = []
    for entry in applications:
        left = abs(entry.amount) - reversed_amount(session, entry.id)
        if left <= 0:
            continue
        released.append(
            add_entry(
                session,
                customer_id=entry.customer_id,
                kind="reversal",
                amount=left,
                actor=actor,
                booked_on=booking_today(session),
                note=f"order {order_id} cancelled; reverses entry {entry.id}",
                order_id=order_id,
                invoice_id=entry.invoice_id,
                reverses_id=entry.id,
            )
        )
    return released


def applied_since(
    session: Session, order_ids: list[str], since: datetime
) -> dict[str, Decimal]:
    """Return what applications net of their reversals took off each order.

    Only entries written after `since` count, as for allocations: the ERP's
    open amount as of `since` already has the earlier ones.
    """
    reversed_entry = aliased(LedgerEntry)
    found: dict[str, Decimal] = {}
    for start in range(0, len(order_ids), 500):
        chunk = order_ids[start : start + 500]
        rows = session.exec(
            select(LedgerEntry.order_id, LedgerEntry.amount)
            .outerjoin(reversed_entry, reversed_entry.id == LedgerEntry.reverses_id)
            .where(
                LedgerEntry.order_id.in_(chunk),
                LedgerEntry.created_at > since,
                (LedgerEntry.kind == "application")
                | (
                    (LedgerEntry.kind == "reversal")
                    & (reversed_entry.kind == "application")
                ),
            )
        ).all()
        for order_id, amount in rows:
            found[order_id] = found.get(order_id, ZERO) - amount
    return found


# Lines ----------------------------------------------------------------------------


def get_line(session: Session, line_id: int) -> StatementLine:
    line = session.get(StatementLine, line_id)
    if line is None:
        raise LedgerNotFound(
            f"statement line {line_id} does not exist", code="line_not_found"
        )
    return line


def _reopen_money_out(session: Session, line_id: int) -> None:
    """Put a fee's money-out line back among the unmatched lines."""
    session.execute(
        update(StatementLine)
        .where(StatementLine.id == line_id, StatementLine.status == "fee")
        .values(status="unmatched", version=StatementLine.version + 1)
        .execution_options(synchronize_session=False)
    )


def audit_entries(
    session: Session,
    actor: str,
    action: str,
    customer_id: str,
    entries: list[LedgerEntry],
) -> None:
    audit(
        session,
        actor,
        action,
        "customer",
        customer_id,
        {
            "entries": [
                {
                    "id": entry.id,
                    "kind": entry.kind,
                    "amount": str(entry.amount),
                    "order_id": entry.order_id,
                    "invoice_id": entry.invoice_id,
                    "reverses_id": entry.reverses_id,
                    "booked_on": entry_day(entry).isoformat(),
                }
                for entry in entries
            ]
        },
    )


# Invoice checks -------------------------------------------------------------------


@dataclass
class InvoiceCheck:
    """An invoice against what its orders were paid and the balance left for it.

    `already_invoiced` is the part of the orders' payments that invoices
    issued before this one have counted, so it is not counted twice.
    """

    invoice_id: str
    customer_id: str | None
    amount: Decimal
    paid_to_orders: Decimal
    prepayment_balance: Decimal
    already_invoiced: Decimal
    covered: bool
    shortfall: Decimal


def get_invoice(session: Session, invoice_id: str) -> Invoice:
    """Return an invoice or raise LedgerNotFound."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise LedgerNotFound(
            f"invoice {invoice_id!r} does not exist", code="invoice_not_found"
        )
    return invoice


def check_invoice(session: Session, invoice_id: str) -> InvoiceCheck:
    """Compare an invoice with what its orders were paid plus the balance.

    Paid is each billed order's amount less its open amount, so payments the
    ERP knew of count as well as those Cashmatch booked. A cancelled order
    counts nothing, because its payments moved to the balance. The invoices
    of one customer use up payments and balance in issue order (then by
    id). Two invoices of one order therefore share its payment, and a
    balance that covered an earlier invoice is not counted again.
    """
    invoice = get_invoice(session, invoice_id)
    paid_left = _paid_by_order(session, invoice)
    balance_left = max(
        balance(session, invoice.customer_id) if invoice.customer_id else ZERO, ZERO
    )
    invoiced = ZERO
    for earlier in _earlier_invoices(session, invoice):
        used = _use_payments(earlier, paid_left)
        invoiced += used
        balance_left -= min(max(earlier.amount - used, ZERO), balance_left)

    paid = sum((paid_left.get(oid, ZERO) for oid in _order_ids(invoice)), ZERO)
    shortfall = max(invoice.amount - paid - balance_left, ZERO)
    return InvoiceCheck(
        invoice_id=invoice.invoice_id,
        customer_id=invoice.customer_id,
        amount=invoice.amount,
        paid_to_orders=paid,
        prepayment_balance=balance_left,
        already_invoiced=invoiced,
        covered=shortfall == 0,
        shortfall=shortfall,
    )


def _order_ids(invoice: Invoice) -> list[str]:
    return list(dict.fromkeys(invoice.order_ids or ()))


def _paid_by_order(session: Session, invoice: Invoice) -> dict[str, Decimal]:
    """Return what was paid to every order of the invoice's customer."""
    if invoice.customer_id is None:
        orders = [session.get(SalesOrder, oid) for oid in _order_ids(invoice)]
    else:
        orders = session.exec(
            select(SalesOrder).where(SalesOrder.customer_id == invoice.customer_id)
        ).all()
    return {
        order.order_id: order.amount - order.open_amount
        for order in orders
        if order is not None and order.status != "cancelled"
    }


def _earlier_invoices(session: Session, invoice: Invoice) -> list[Invoice]:
    if invoice.customer_id is None:
        return []
    others = session.exec(
        select(Invoice).where(
            Invoice.customer_id == invoice.customer_id,
            Invoice.invoice_id != invoice.invoice_id,
        )
    ).all()
    mine = _issue_key(invoice)
    return sorted((o for o in others if _issue_key(o) < mine), key=_issue_key)


def _issue_key(invoice: Invoice) -> tuple[date, str]:
    return (invoice.issue_date or date.max, invoice.invoice_id)


def _use_payments(invoice: Invoice, paid_left: dict[str, Decimal]) -> Decimal:
    """Take an earlier invoice's amount from its orders' payments; return it."""
    need = invoice.amount
    used = ZERO
    for order_id in _order_ids(invoice):
        available = paid_left.get(order_id, ZERO)
        take = min(available, need - used)
        if take <= 0:
            continue
        paid_left[order_id] = available - take
        used += take
    return used


def check_new_invoices(
    session: Session, invoice_ids: list[str], *, policy: str, actor: str
) -> list[InvoiceCheck]:
    """Check stored invoices; reject or flag those beyond what was paid.

    With the `reject` policy an uncovered invoice raises InvoiceNotCovered,
    so the caller's transaction, and the invoices in it, roll back. With
    `flag` each uncovered invoice gets an `invoice_flagged` audit event.
    """
    checks = [check_invoice(session, invoice_id) for invoice_id in invoice_ids]
    uncovered = [check for check in checks if not check.covered]
    if uncovered and policy == "reject":
        shown = ", ".join(f"{c.invoice_id} short by {c.shortfall}" for c in uncovered)
        raise InvoiceNotCovered(
            f"invoices beyond what their customers paid or prepaid: {shown}; "
            "nothing was stored. Issue them after the payment arrives"
        )
    for check in uncovered:
        audit(
            session,
            actor,
            "invoice_flagged",
            "invoice",
            check.invoice_id,
            {
                "customer_id": check.customer_id,
                "amount": str(check.amount),
                "shortfall": str(check.shortfall),
            },
        )
        log.warning(
            "invoice %s of customer %s is beyond what was paid by %s",
            check.invoice_id,
            check.customer_id,
            check.shortfall,
        )
    return checks


# Feeds ----------------------------------------------------------------------------


def feed_events(
    session: Session, *, cursor: int, limit: int, settle_seconds: float
) -> tuple[list[dict], int]:
    """Return allocations booked and reversed after `cursor`, and the next cursor.

    Events younger than `settle_seconds` are held back. On PostgreSQL two
    transactions can commit their audit ids out of order, and a reader
    that moved past a later id would never see the earlier one.
    """
    query = select(AuditEvent).where(
        AuditEvent.id > cursor, AuditEvent.action.in_(FEED_ACTIONS)
    )
    if settle_seconds > 0:
        query = query.where(
            AuditEvent.at <= utcnow() - timedelta(seconds=settle_seconds)
        )
    query = query.order_by(AuditEvent.id).limit(limit)
    events: list[dict] = []
    next_cursor = cursor
    for audit in session.exec(query).all():
        events += _feed_rows(audit)
        next_cursor = audit.id
    return events, next_cursor


def _feed_rows(audit: AuditEvent) -> list[dict]:
    detail = audit.detail or {}
    booked = "reversed" if audit.action == "reverse" else "booked"
    rows = [(booked, a) for a in detail.get("allocations", [])]
    rows += [("reversed", a) for a in detail.get("reversed", [])]
    return [
        {
            "cursor": audit.id,
            "event": event,
            "at": audit.at,
            "actor": audit.actor,
            "line_id": int(audit.entity_id),
            "line_ref": detail.get("line_ref", ""),
            "allocation_id": allocation.get("id"),
            "customer_id": allocation.get("customer_id"),
            "order_id": allocation.get("order_id"),
            "target": allocation.get("target", ""),
            "amount": Decimal(allocation.get("amount", "0")),
        }
        for event, allocation in rows
    ]


def entries_after(
    session: Session, *, cursor: int, limit: int, settle_seconds: float
) -> tuple[list[LedgerEntry], int]:
    """Return ledger entries with an id above `cursor`, and the next cursor.

    Entries younger than `settle_seconds` are held back for the reason given
    in `feed_events`.
    """
    query = select(LedgerEntry).where(LedgerEntry.id > cursor)
    if settle_seconds > 0:
        query = query.where(
            LedgerEntry.created_at <= utcnow() - timedelta(seconds=settle_seconds)
        )
    entries = list(session.exec(query.order_by(LedgerEntry.id).limit(limit)).all())
    return entries, entries[-1].id if entries else cursor


# Ageing ------------------------------------------------------------------------------


@dataclass
class Layer:
    """Money on a balance that arrived on one day and is not used yet."""

    day: date
    amount: Decimal
    entry_id: int


def balance_layers(
    session: Session,
    customer_ids: list[str] | None = None,
    *,
    booked_to: date | None = None,
) -> dict[str, list[Layer]]:
    """Return each customer's unused money by the day it arrived, oldest first.

    Money is used first in, first out: an application, refund, fee or
    write-off uses the oldest money, and the reversal of a receipt takes
    back that receipt's own money. A receipt arrived on its line's booking
    day; other money that comes back arrived on its entry's day. A balance
    below zero is one layer with a negative amount. With `booked_to`, only
    entries booked on or before that day count (see `entry_day`).
    """
    query = (
        select(LedgerEntry, StatementLine.booking_date)
        .outerjoin(StatementLine, StatementLine.id == LedgerEntry.line_id)
        .order_by(LedgerEntry.id)
    )
    if customer_ids is not None:
        query = query.where(LedgerEntry.customer_id.in_(customer_ids))
    layers: dict[str, list[Layer]] = {}
    for entry, line_day in session.exec(query).all():
        if booked_to is not None and entry_day(entry) > booked_to:
            continue

        stack = layers.setdefault(entry.customer_id, [])
        if entry.amount > 0:
            day = line_day if entry.kind == "receipt" and line_day else entry_day(entry)
            _add_layer(stack, Layer(day, entry.amount, entry.id))
        elif entry.amount < 0:
            _use_layers(stack, -entry.amount, entry)
    return {
        cid: [layer for layer in stack if layer.amount] for cid, stack in layers.items()
    }


def _add_layer(stack: list[Layer], layer: Layer) -> None:
    if stack and stack[0].amount < 0:
        # Money that arrives while the balance is below zero pays that first.
        debt = stack[0]
        paid = min(layer.amount, -debt.amount)
        debt.amount += paid
        layer.amount -= paid
        if debt.amount == 0:
            stack.pop(0)
    if layer.amount > 0:
        stack.append(layer)
        stack.sort(key=lambda item: (item.day, item.entry_id))


def _use_layers(stack: list[Layer], amount: Decimal, entry: LedgerEntry) -> None:
    own = [layer for layer in stack if layer.entry_id == entry.reverses_id]
    for layer in own + [layer for layer in stack if layer not in own]:
        take = min(layer.amount, amount)
        if take <= 0:
            continue
        layer.amount -= take
        amount -= take
        if amount == 0:
            break
    stack[:] = [layer for layer in stack if layer.amount != 0]
    if amount == 0:
        return
    if stack and stack[0].amount < 0:
        stack[0].amount -= amount
    else:
        stack.insert(0, Layer(entry_day(entry), -amount, entry.id))


def audit(
    session: Session, actor: str, action: str, entity: str, entity_id, detail: dict
) -> None:
    """Add an audit event for a ledger action."""
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            detail=detail,
        )
    )
