"""Controls on the prepayment ledger: closed months and second approvals.

- A closed month is locked. `service.ledger` dates no entry in it, and a
  correction of an entry in a closed month is a new entry in an open month
  that names the entry it corrects. Only a month that has ended can close.
- A refund or write-off above the approval limit is stored as a pending
  request. It moves no money until a second user approves it, and the user
  who asked for it can never approve it. A bank fee charged to a balance
  needs no approval.
- A refund is paid by a money-out statement line of exactly its amount,
  which then has status `refund`. A bank fee may name the bank's money-out
  fee line, which then has status `fee`.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.money import ZERO
from models.tables import ClosedMonth, LedgerRequest, StatementLine, utcnow
from service import ledger
from service.ledger import (
    ApprovalConflict,
    BalanceConflict,
    InvalidLedgerRequest,
    LedgerNotFound,
    MonthClosed,
    OwnRequest,
    audit,
    month_end,
    month_of,
    parse_month,
)

log = logging.getLogger("cashmatch.service")

REQUEST_KINDS = ("refund", "write_off", "fee")
# Kinds that need a second user's approval above the approval limit.
APPROVED_KINDS = ("refund", "write_off")


# Closed months -------------------------------------------------------------------


def close_month(
    session: Session, month: str, *, actor: str, today: date, note: str = ""
) -> ClosedMonth:
    """Close a month that has ended, so nothing more is booked in it.

    Raises InvalidLedgerRequest for a month that has not ended by `today`
    and MonthClosed for a month closed before.
    """
    first = parse_month(month)
    if month_end(first) >= today:
        raise InvalidLedgerRequest(
            f"month {month} has not ended (today is {today.isoformat()}); "
            "close it after its last day"
        )
    ledger.lock_months(session, exclusive=True)
    if session.get(ClosedMonth, month_of(first)) is not None:
        raise MonthClosed(f"month {month_of(first)} is closed already")
    row = ClosedMonth(month=month_of(first), closed_by=actor, note=note[:500])
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise MonthClosed(f"month {month_of(first)} is closed already") from None
    audit(session, actor, "close_month", "closed_month", row.month, {"note": note})
    log.info("month %s closed by %s", row.month, actor)
    return row


# Approval requests ------------------------------------------------------------


def needs_approval(kind: str, amount: Decimal, limit: Decimal) -> bool:
    """Tell whether a request of this kind and amount waits for a second user."""
    return kind in APPROVED_KINDS and amount > limit


def new_request(
    session: Session,
    *,
    customer_id: str,
    kind: str,
    amount: Decimal,
    actor: str,
    limit: Decimal,
    note: str = "",
    source_line_id: int | None = None,
    booked_on: date | None = None,
) -> LedgerRequest:
    """Store a request; it is `approved` at once when no approval is needed."""
    if kind not in REQUEST_KINDS:
        raise InvalidLedgerRequest(
            f"kind {kind!r} is not one of {', '.join(REQUEST_KINDS)}"
        )
    if amount <= 0:
        raise InvalidLedgerRequest(f"a {kind} of {amount} must be positive")
    pending = needs_approval(kind, amount, limit)
    request = LedgerRequest(
        customer_id=customer_id,
        kind=kind,
        amount=amount,
        status="pending" if pending else "approved",
        source_line_id=source_line_id,
        booked_on=booked_on,
        note=note[:500],
        requested_by=actor,
        decided_by=None if pending else actor,
        decided_at=None if pending else utcnow(),
    )
    session.add(request)
    session.flush()
    audit(
        session,
        actor,
        f"request_{kind}",
        "ledger_request",
        request.id,
        {
            "customer_id": customer_id,
            "amount": str(amount),
            "status": request.status,
            "limit": str(limit),
        },
    )
    return request


def get_request(session: Session, request_id: int) -> LedgerRequest:
    """Return a request or raise LedgerNotFound."""
    request = session.get(LedgerRequest, request_id)
    if request is None:
        raise LedgerNotFound(
            f"ledger request {request_id} does not exist",
            code="request_not_found",
        )
    return request


def decide_request(
    session: Session, request_id: int, *, actor: str, approve: bool, reason: str = ""
) -> LedgerRequest:
    """Approve or reject a pending request.

    Only a user other than the requester may approve; the requester may
    withdraw it by rejecting it. The conditional update lets only one of two
    decisions at once win.
    """
    status = "approved" if approve else "rejected"
    conditions = [LedgerRequest.id == request_id, LedgerRequest.status == "pending"]
    if approve:
        conditions.append(LedgerRequest.requested_by != actor)
    result = session.execute(
        update(LedgerRequest)
        .where(*conditions)
        .values(
            status=status,
            decided_by=actor,
            decided_at=utcnow(),
            version=LedgerRequest.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    request = get_request(session, request_id)
    session.refresh(request)
    if result.rowcount != 1:
        raise _decision_conflict(request, actor)
    audit(
        session,
        actor,
        f"{'approve' if approve else 'reject'}_{request.kind}",
        "ledger_request",
        request.id,
        {"reason": reason[:500], "requested_by": request.requested_by},
    )
    log.info(
        "ledger request %s (%s %s for %s) %s by %s",
        request.id,
        request.kind,
        request.amount,
        request.customer_id,
        status,
        actor,
    )
    return request


def _decision_conflict(request: LedgerRequest, actor: str) -> ApprovalConflict:
    if request.status != "pending":
        return ApprovalConflict(
            f"ledger request {request.id} is already {request.status} by "
            f"{request.decided_by}; nothing was changed"
        )
    return OwnRequest(
        f"ledger request {request.id} was made by {actor}, who cannot approve "
        "it; another user must approve it"
    )


# Refunds, write-offs and fees ------------------------------------------------------


def request_refund(
    session: Session,
    *,
    customer_id: str,
    amount: Decimal,
    actor: str,
    limit: Decimal,
    today: date,
    note: str = "",
    source_line_id: int | None = None,
    payment_line_id: int | None = None,
    booked_on: date | None = None,
) -> LedgerRequest:
    """Ask to pay money back to a customer; above `limit` it waits for approval.

    The money comes from the customer's balance, unless `source_line_id`
    names a line a clerk marked for refund (a duplicate payment), whose
    money never reached the balance. `payment_line_id` is the money-out line
    that pays the refund, when it is on a statement already. A refund that
    waits for approval cannot name it yet.
    """
    ledger.get_customer(session, customer_id)
    if source_line_id is not None:
        _check_refund_source(session, source_line_id, amount)
    if _from_balance(session, source_line_id):
        ledger.check_balance(session, customer_id, amount, what="refund")
    if booked_on is not None:
        ledger.check_open(session, booked_on, what="the refund")
    request = new_request(
        session,
        customer_id=customer_id,
        kind="refund",
        amount=amount,
        actor=actor,
        limit=limit,
        note=note,
        source_line_id=source_line_id,
        booked_on=booked_on,
    )
    if payment_line_id is not None:
        if request.status != "approved":
            raise InvalidLedgerRequest(
                f"a refund of {amount} needs a second user's approval above "
                f"{limit}; name the line that paid it once it is approved"
            )
        pay_refund(session, request.id, payment_line_id, actor=actor)
    if request.status == "approved":
        _carry_out(session, request, actor=actor, today=today)
    return request


def request_taking(
    session: Session,
    *,
    customer_id: str,
    kind: str,
    amount: Decimal,
    actor: str,
    limit: Decimal,
    today: date,
    note: str = "",
    line_id: int | None = None,
    booked_on: date | None = None,
) -> LedgerRequest:
    """Ask to write off part of a balance or charge a bank fee to it.

    A write-off above `limit` waits for a second user's approval; a fee is
    booked at once. `line_id` names the statement line of a bank fee.
    """
    if kind not in ("write_off", "fee"):
        raise InvalidLedgerRequest(f"kind {kind!r} is not write_off or fee")
    ledger.get_customer(session, customer_id)
    ledger.check_balance(session, customer_id, amount, what=kind.replace("_", "-"))
    if line_id is not None:
        if kind != "fee":
            raise InvalidLedgerRequest("only a bank fee names a statement line")
        _claim_money_out(
            session, ledger.get_line(session, line_id), amount, status="fee"
        )
    if booked_on is not None:
        ledger.check_open(session, booked_on, what=f"the {kind}")
    request = new_request(
        session,
        customer_id=customer_id,
        kind=kind,
        amount=amount,
        actor=actor,
        limit=limit,
        note=note,
        source_line_id=line_id,
        booked_on=booked_on,
    )
    if request.status == "approved":
        _carry_out(session, request, actor=actor, today=today)
    return request


def approve_request(
    session: Session, request_id: int, *, actor: str, today: date, reason: str = ""
) -> LedgerRequest:
    """Approve a pending request as a second user and book its entry."""
    request = decide_request(
        session, request_id, actor=actor, approve=True, reason=reason
    )
    _carry_out(session, request, actor=actor, today=today)
    return request


def reject_request(
    session: Session, request_id: int, *, actor: str, reason: str = ""
) -> LedgerRequest:
    """Reject a pending request; nothing is booked."""
    return decide_request(
        session, request_id, actor=actor, approve=False, reason=reason
    )


def _carry_out(
    session: Session, request: LedgerRequest, *, actor: str, today: date
) -> None:
    """Write the entry of an approved request, unless its money is not a balance."""
    if request.kind == "refund" and not _from_balance(session, request.source_line_id):
        return

    ledger.get_customer(session, request.customer_id, lock=True)
    ledger.check_balance(
        session,
        request.customer_id,
        request.amount,
        what=f"{request.kind.replace('_', '-')} (request {request.id})",
    )

    day = request.booked_on or ledger.open_day(session, today)
    # A refund names the line that paid it, and a fee the bank's fee line.
    line_id = (
        request.payment_line_id if request.kind == "refund" else request.source_line_id
    )
    entry = ledger.add_entry(
        session,
        customer_id=request.customer_id,
        kind=request.kind,
        amount=-request.amount,
        actor=actor,
        booked_on=day,
        note=request.note or f"{request.kind} request {request.id}",
        line_id=line_id,
    )
    request.entry_id = entry.id
    session.add(request)
    session.flush()
    ledger.audit_entries(
        session, actor, f"book_{request.kind}", request.customer_id, [entry]
    )


def _from_balance(session: Session, source_line_id: int | None) -> bool:
    if source_line_id is None:
        return True
    line = session.get(StatementLine, source_line_id)
    return line is None or line.status != "refund"


def _check_refund_source(session: Session, line_id: int, amount: Decimal) -> None:
    line = ledger.get_line(session, line_id)
    if line.amount <= 0:
        raise InvalidLedgerRequest(
            f"line {line.line_ref} is money out; a refund's source is money in"
        )
    requested = (
        session.exec(
            select(func.sum(LedgerRequest.amount)).where(
                LedgerRequest.source_line_id == line_id,
                LedgerRequest.kind == "refund",
                LedgerRequest.status.in_(("pending", "approved")),
            )
        ).one()
        or ZERO
    )
    if requested + amount > line.amount:
        raise InvalidLedgerRequest(
            f"line {line.line_ref} is {line.amount} and {requested} of it is "
            f"refunded or asked for already; cannot refund {amount} more"
        )


def pay_refund(
    session: Session, request_id: int, payment_line_id: int, *, actor: str
) -> LedgerRequest:
    """Record that a money-out line paid an approved refund.

    The line must be open and exactly the refund's amount, as money out; it
    becomes `refund`. Conditional updates keep one line from paying two
    refunds and one refund from being paid twice.
    """
    # NOTE: undoing the line later (review.reverse_line) or voiding its batch
    # leaves the request pointing at it. The reconciliation lists an undone
    # line as a refund_mismatch, but it leaves voided lines out.
    request = get_request(session, request_id)
    line = ledger.get_line(session, payment_line_id)
    if request.kind != "refund" or request.status != "approved":
        raise InvalidLedgerRequest(
            f"ledger request {request_id} is a {request.status} {request.kind}; "
            "only an approved refund can be paid"
        )
    _claim_money_out(session, line, request.amount, status="refund")
    linked = session.execute(
        update(LedgerRequest)
        .where(LedgerRequest.id == request_id, LedgerRequest.payment_line_id.is_(None))
        .values(payment_line_id=line.id, version=LedgerRequest.version + 1)
        .execution_options(synchronize_session=False)
    )
    if linked.rowcount != 1:
        raise ApprovalConflict(
            f"ledger request {request_id} is paid already; nothing was changed"
        )
    session.refresh(request)
    audit(
        session,
        actor,
        "pay_refund",
        "ledger_request",
        request.id,
        {"line_id": line.id, "line_ref": line.line_ref, "amount": str(line.amount)},
    )
    return request


def _claim_money_out(
    session: Session, line: StatementLine, amount: Decimal, *, status: str
) -> None:
    """Mark an open money-out line of exactly `amount` as a refund or a fee."""
    if line.amount != -amount:
        raise InvalidLedgerRequest(
            f"line {line.line_ref} is {line.amount}; a {status} of {amount} "
            f"is paid by a line of {-amount}"
        )
    if not ledger.claim_open_line(session, line, status):
        raise BalanceConflict(
            f"line {line.line_ref} is {line.status}; only an open money-out line "
            f"can pay a {status}"
        )


def cancel_refund(
    session: Session, request_id: int, *, actor: str, reason: str, today: date
) -> LedgerRequest:
    """Cancel an approved refund that was not paid; its money returns."""
    request = get_request(session, request_id)
    cancelled = session.execute(
        update(LedgerRequest)
        .where(
            LedgerRequest.id == request_id,
            LedgerRequest.kind == "refund",
            LedgerRequest.status == "approved",
            LedgerRequest.payment_line_id.is_(None),
        )
        .values(status="cancelled", version=LedgerRequest.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(request)
    if cancelled.rowcount != 1:
        raise ApprovalConflict(
            f"ledger request {request_id} is a {request.status} {request.kind}"
            f"{' that was paid' if request.payment_line_id else ''}; only an "
            "approved, unpaid refund can be cancelled"
        )
    if request.entry_id is not None:
        ledger.add_entry(
            session,
            customer_id=request.customer_id,
            kind="reversal",
            amount=request.amount,
            actor=actor,
            booked_on=ledger.open_day(session, today),
            note=f"refund request {request.id} cancelled: {reason}",
            reverses_id=request.entry_id,
        )
    audit(
        session,
        actor,
        "cancel_refund",
        "ledger_request",
        request.id,
        {"reason": reason},
    )
    return request


def list_requests(
    session: Session, *, status: str | None = None, customer_id: str | None = None
) -> list[LedgerRequest]:
    """Return requests, newest first, filtered by status and customer."""
    query = select(LedgerRequest)
    if status:
        query = query.where(LedgerRequest.status == status)
    if customer_id:
        query = query.where(LedgerRequest.customer_id == customer_id)
    return list(session.exec(query.order_by(LedgerRequest.id.desc())).all())
