"""Routes for prepayment ledgers, approvals, closed months and reports.

Writes take an `Idempotency-Key` like the other writes. Applying a balance,
requesting a refund, write-off or bank fee and reversing an entry need the
`confirm` permission. Approving or rejecting a request needs `review`, and
closing a month needs `admin`. A rejected write (a conflict or a forbidden
approval) is kept in the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from service import controls, ledger, reports
from service.api import exporting
from service.api.deps import (
    Caller,
    Idempotency,
    RecordId,
    SessionDep,
    SettingsDep,
    idempotent_write,
    require,
)
from service.api.errors import error_response
from service.api.reports import DOWNLOAD_ROUTE
from service.api.schemas import MAX_INT, Identifier, Money, RequestModel
from service.ledger import LedgerError
from service.masking import (
    mask_customer_ledger,
    mask_report_row,
    masked_for,
    needs_masking,
)
from service.settings import Settings

log = logging.getLogger("cashmatch.service")

router = APIRouter(prefix="/v1", tags=["ledger"])

Reader = Annotated[Caller, Depends(require("read"))]
ConfirmWrite = Annotated[Idempotency, Depends(idempotent_write("confirm"))]
ReviewWrite = Annotated[Idempotency, Depends(idempotent_write("review"))]
AdminWrite = Annotated[Idempotency, Depends(idempotent_write("admin"))]
PositiveMoney = Annotated[Money, Field(gt=0)]
Format = Literal["csv", "xlsx"]
# As JSON the reconciliation has its own route and shape; as a file it is
# rows like the other reports.
TableName = Literal[
    "balances", "unmatched", "anomalies", "customer-anomalies", "reminders"
]
ReportName = Literal[TableName, "reconciliation"]
LineId = Annotated[int, Field(ge=1, le=MAX_INT)]


def install(app: FastAPI) -> None:
    """Add the ledger routes and the handler that maps ledger errors."""
    app.include_router(router)
    app.add_exception_handler(LedgerError, _ledger_error)


async def _ledger_error(request: Request, exc: LedgerError) -> Response:
    return error_response(exc.status_code, exc.code, str(exc))


@contextmanager
def _rejections_audited(
    session: Session, actor: str, action: str, entity: str, entity_id
) -> Iterator[None]:
    """Keep a rejected ledger write in the audit log, then let the error through."""
    try:
        yield
    except LedgerError as exc:
        if exc.status_code not in (403, 409):
            raise
        session.rollback()
        ledger.audit(
            session,
            actor,
            f"{action}_rejected",
            entity,
            entity_id,
            {"reason": str(exc)[:500]},
        )
        session.commit()
        log.warning(
            "%s on %s %s by %s rejected: %s", action, entity, entity_id, actor, exc
        )
        raise


def _today(settings: Settings) -> date:
    return ledger.local_today(settings.time_zone)


# Bodies -------------------------------------------------------------------------


class LedgerEntryPublic(BaseModel):
    """One ledger entry; `amount` is signed and `booked_on` its day in the books."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: str
    kind: str
    amount: Money
    booked_on: date | None
    line_id: int | None
    allocation_id: int | None
    order_id: str | None
    invoice_id: str | None
    reverses_id: int | None
    actor: str
    note: str
    created_at: datetime


class LedgerRequestPublic(BaseModel):
    """A refund, write-off or fee request and its status."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: str
    kind: str
    amount: Money
    status: str
    source_line_id: int | None
    payment_line_id: int | None
    entry_id: int | None
    booked_on: date | None
    note: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None


class CustomerAnomalyPublic(BaseModel):
    """A customer-level anomaly with its reason."""

    model_config = ConfigDict(from_attributes=True)

    customer_id: str
    name: str
    kind: str
    amount: Money
    since: date
    age_days: int
    detail: str
    line_refs: list[str]


class LineAnomalyPublic(BaseModel):
    """A line of the customer with the matcher's anomaly reasons and score."""

    line_id: int
    line_ref: str
    booking_date: date
    amount: Money
    status: str
    reasons: list[str]
    score: float | None


class CustomerLedgerPublic(BaseModel):
    """A customer's balance, entries, open requests and anomalies."""

    customer_id: str
    name: str
    balance: Money
    entries: list[LedgerEntryPublic]
    requests: list[LedgerRequestPublic]
    anomalies: list[CustomerAnomalyPublic]
    line_anomalies: list[LineAnomalyPublic]


class ApplyCreate(RequestModel):
    """Apply part of a balance to one order, or to an invoice's open orders."""

    amount: PositiveMoney
    order_id: Identifier | None = None
    invoice_id: Identifier | None = None
    note: str = Field(default="", max_length=300)
    booked_on: date | None = Field(default=None, description="Default today")


class EntriesPublic(BaseModel):
    """Ledger entries written by one action."""

    entries: list[LedgerEntryPublic]


class RefundCreate(RequestModel):
    """A refund from the balance, or of a line marked for refund."""

    amount: PositiveMoney
    source_line_id: LineId | None = None
    payment_line_id: LineId | None = None
    note: str = Field(default="", max_length=300)
    booked_on: date | None = None


class TakingCreate(RequestModel):
    """A write-off, or a bank fee charged to the balance."""

    amount: PositiveMoney
    line_id: LineId | None = Field(
        default=None, description="The bank's money-out fee line, for a fee"
    )
    note: str = Field(default="", max_length=300)
    booked_on: date | None = None


class ReverseCreate(RequestModel):
    """Reverse all or part of an application, fee or write-off."""

    reason: str = Field(min_length=1, max_length=300)
    amount: PositiveMoney | None = Field(default=None, description="Default all")
    booked_on: date | None = None


class DecisionCreate(RequestModel):
    """A reason for approving, rejecting or cancelling a request."""

    reason: str = Field(default="", max_length=300)


class PaymentCreate(RequestModel):
    """The money-out statement line that paid a refund."""

    line_id: LineId


class MonthPublic(BaseModel):
    """A closed month."""

    model_config = ConfigDict(from_attributes=True)

    month: str
    closed_by: str
    closed_at: datetime
    note: str


class MonthClose(RequestModel):
    """A note on closing a month."""

    note: str = Field(default="", max_length=300)


class InvoiceCheckPublic(BaseModel):
    """An invoice against what its orders were paid and the balance left for it."""

    model_config = ConfigDict(from_attributes=True)

    invoice_id: str
    customer_id: str | None
    amount: Money
    paid_to_orders: Money
    prepayment_balance: Money
    already_invoiced: Money
    covered: bool
    shortfall: Money


class EntryPage(BaseModel):
    """Ledger entries after a cursor, and the cursor to ask with next."""

    entries: list[LedgerEntryPublic]
    next_cursor: int


class ReportPublic(BaseModel):
    """A report as columns and rows; money is a decimal string."""

    name: str
    as_of: date
    columns: list[str]
    rows: list[dict[str, Any]]


class DifferencePublic(BaseModel):
    """One thing that does not tie."""

    model_config = ConfigDict(from_attributes=True)

    kind: str
    amount: Money
    line_ref: str
    detail: str


class ReconciliationPublic(BaseModel):
    """One bank account's month tied from bank to allocations to ledger."""

    model_config = ConfigDict(from_attributes=True)

    account: str
    month: str
    opening_balance: Money | None
    closing_balance: Money | None
    closing_day: date | None
    closing_day_source: Literal["balance_date", "last_line"] | None
    lines: int
    lines_total: Money
    money_in: Money
    money_out: Money
    places: dict[str, Money]
    balance_allocations: Money
    ledger_receipts: Money
    ledger_movement: dict[str, Money]
    differences: list[DifferencePublic]
    tied: bool


# Customer ledgers and balance actions -----------------------------------------------


@router.get("/ledger/customers/{customer_id}", response_model=CustomerLedgerPublic)
def customer_ledger(
    customer_id: str, session: SessionDep, settings: SettingsDep, caller: Reader
) -> CustomerLedgerPublic:
    """Return a customer's balance, entries, open requests and anomalies."""
    view = ledger.customer_ledger(session, customer_id)
    anomalies = reports.customer_anomalies(
        session,
        as_of=_today(settings),
        unused_days=settings.unused_balance_days,
        fee_max=settings.fee_max,
        customer_id=customer_id,
    )
    lines = reports.line_anomalies(session, customer_id)
    result = CustomerLedgerPublic(
        customer_id=view.customer_id,
        name=view.name,
        balance=view.balance,
        entries=[LedgerEntryPublic.model_validate(e) for e in view.entries],
        requests=[LedgerRequestPublic.model_validate(r) for r in view.requests],
        anomalies=[CustomerAnomalyPublic.model_validate(a) for a in anomalies],
        line_anomalies=[
            LineAnomalyPublic(
                line_id=line.id,
                line_ref=line.line_ref,
                booking_date=line.booking_date,
                amount=line.amount,
                status=line.status,
                reasons=list(line.anomaly_reasons or ()),
                score=line.anomaly_score,
            )
            for line in lines
        ],
    )
    return masked_for(caller.role, result, mask_customer_ledger)


@router.post(
    "/ledger/customers/{customer_id}/applications",
    response_model=EntriesPublic,
    status_code=201,
)
def apply_balance(
    customer_id: str,
    body: ApplyCreate,
    session: SessionDep,
    settings: SettingsDep,
    write: ConfirmWrite,
) -> EntriesPublic:
    """Apply part of the balance to an order or an invoice; never beyond either."""
    with _rejections_audited(session, write.actor, "apply", "customer", customer_id):
        entries = ledger.apply_balance(
            session,
            customer_id=customer_id,
            amount=body.amount,
            actor=write.actor,
            today=_today(settings),
            order_id=body.order_id,
            invoice_id=body.invoice_id,
            note=body.note,
            booked_on=body.booked_on,
        )
    result = EntriesPublic(
        entries=[LedgerEntryPublic.model_validate(e) for e in entries]
    )
    return write.finish(result, 201)


@router.post(
    "/ledger/customers/{customer_id}/refunds",
    response_model=LedgerRequestPublic,
    status_code=201,
)
def request_refund(
    customer_id: str,
    body: RefundCreate,
    session: SessionDep,
    settings: SettingsDep,
    write: ConfirmWrite,
) -> LedgerRequestPublic:
    """Request a refund; above the approval limit it waits for a second user."""
    with _rejections_audited(session, write.actor, "refund", "customer", customer_id):
        request = controls.request_refund(
            session,
            customer_id=customer_id,
            amount=body.amount,
            actor=write.actor,
            limit=settings.approval_limit,
            today=_today(settings),
            note=body.note,
            source_line_id=body.source_line_id,
            payment_line_id=body.payment_line_id,
            booked_on=body.booked_on,
        )
    return write.finish(LedgerRequestPublic.model_validate(request), 201)


@router.post(
    "/ledger/customers/{customer_id}/write-offs",
    response_model=LedgerRequestPublic,
    status_code=201,
)
def request_write_off(
    customer_id: str,
    body: TakingCreate,
    session: SessionDep,
    settings: SettingsDep,
    write: ConfirmWrite,
) -> LedgerRequestPublic:
    """Request a write-off; above the approval limit it waits for a second user."""
    return _taking(customer_id, "write_off", body, session, settings, write)


@router.post(
    "/ledger/customers/{customer_id}/fees",
    response_model=LedgerRequestPublic,
    status_code=201,
)
def charge_fee(
    customer_id: str,
    body: TakingCreate,
    session: SessionDep,
    settings: SettingsDep,
    write: ConfirmWrite,
) -> LedgerRequestPublic:
    """Charge a bank fee to a balance, optionally naming the bank's fee line."""
    return _taking(customer_id, "fee", body, session, settings, write)


def _taking(
    customer_id: str,
    kind: str,
    body: TakingCreate,
    session: Session,
    settings: Settings,
    write: Idempotency,
) -> LedgerRequestPublic:
    with _rejections_audited(session, write.actor, kind, "customer", customer_id):
        request = controls.request_taking(
            session,
            customer_id=customer_id,
            kind=kind,
            amount=body.amount,
            actor=write.actor,
            limit=settings.approval_limit,
            today=_today(settings),
            note=body.note,
            line_id=body.line_id,
            booked_on=body.booked_on,
        )
    return write.finish(LedgerRequestPublic.model_validate(request), 201)


@router.post(
    "/ledger/entries/{entry_id}/reverse",
    response_model=LedgerEntryPublic,
    status_code=201,
)
def reverse_entry(
    entry_id: RecordId,
    body: ReverseCreate,
    session: SessionDep,
    settings: SettingsDep,
    write: ConfirmWrite,
) -> LedgerEntryPublic:
    """Reverse an application, fee or write-off with a new entry naming it."""
    with _rejections_audited(session, write.actor, "reverse", "ledger_entry", entry_id):
        reversal = ledger.reverse_entry(
            session,
            entry_id,
            actor=write.actor,
            reason=body.reason,
            today=_today(settings),
            amount=body.amount,
            booked_on=body.booked_on,
        )
    return write.finish(LedgerEntryPublic.model_validate(reversal), 201)


@router.get("/ledger/entries", response_model=EntryPage)
def entries(
    request: Request,
    session: SessionDep,
    caller: Reader,
    cursor: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> EntryPage:
    """Return ledger entries written after `cursor`, oldest first."""
    settle = request.app.state.feed_settle_seconds
    found, next_cursor = ledger.entries_after(
        session, cursor=cursor, limit=limit, settle_seconds=settle
    )
    return EntryPage(
        entries=[LedgerEntryPublic.model_validate(e) for e in found],
        next_cursor=next_cursor,
    )


# Approvals ------------------------------------------------------------------------


@router.get("/ledger/requests", response_model=list[LedgerRequestPublic])
def list_requests(
    session: SessionDep,
    caller: Reader,
    status: Annotated[str | None, Query(max_length=16)] = None,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[LedgerRequestPublic]:
    """Return refund, write-off and fee requests, newest first."""
    found = controls.list_requests(session, status=status, customer_id=customer_id)
    return [LedgerRequestPublic.model_validate(r) for r in found]


@router.post(
    "/ledger/requests/{request_id}/approve", response_model=LedgerRequestPublic
)
def approve_request(
    request_id: RecordId,
    body: DecisionCreate,
    session: SessionDep,
    settings: SettingsDep,
    write: ReviewWrite,
) -> LedgerRequestPublic:
    """Approve a pending request as a user other than its requester."""
    entity = ("ledger_request", request_id)
    with _rejections_audited(session, write.actor, "approve", *entity):
        request = controls.approve_request(
            session,
            request_id,
            actor=write.actor,
            today=_today(settings),
            reason=body.reason,
        )
    return write.finish(LedgerRequestPublic.model_validate(request))


@router.post("/ledger/requests/{request_id}/reject", response_model=LedgerRequestPublic)
def reject_request(
    request_id: RecordId, body: DecisionCreate, session: SessionDep, write: ReviewWrite
) -> LedgerRequestPublic:
    """Reject a pending request; nothing is booked."""
    entity = ("ledger_request", request_id)
    with _rejections_audited(session, write.actor, "reject", *entity):
        request = controls.reject_request(
            session, request_id, actor=write.actor, reason=body.reason
        )
    return write.finish(LedgerRequestPublic.model_validate(request))


@router.post("/ledger/requests/{request_id}/pay", response_model=LedgerRequestPublic)
def pay_refund(
    request_id: RecordId, body: PaymentCreate, session: SessionDep, write: ConfirmWrite
) -> LedgerRequestPublic:
    """Name the money-out statement line that paid an approved refund."""
    entity = ("ledger_request", request_id)
    with _rejections_audited(session, write.actor, "pay", *entity):
        request = controls.pay_refund(
            session, request_id, body.line_id, actor=write.actor
        )
    return write.finish(LedgerRequestPublic.model_validate(request))


@router.post("/ledger/requests/{request_id}/cancel", response_model=LedgerRequestPublic)
def cancel_refund(
    request_id: RecordId,
    body: DecisionCreate,
    session: SessionDep,
    settings: SettingsDep,
    write: ConfirmWrite,
) -> LedgerRequestPublic:
    """Cancel an approved refund that was not paid; its money returns."""
    entity = ("ledger_request", request_id)
    with _rejections_audited(session, write.actor, "cancel", *entity):
        request = controls.cancel_refund(
            session,
            request_id,
            actor=write.actor,
            reason=body.reason,
            today=_today(settings),
        )
    return write.finish(LedgerRequestPublic.model_validate(request))


# Months and invoices ----------------------------------------------------------------


@router.get("/ledger/months", response_model=list[MonthPublic])
def closed_months(session: SessionDep, caller: Reader) -> list[MonthPublic]:
    """Return the closed months, oldest first."""
    return [MonthPublic.model_validate(m) for m in ledger.closed_months(session)]


@router.post(
    "/ledger/months/{month}/close", response_model=MonthPublic, status_code=201
)
def close_month(
    month: str,
    body: MonthClose,
    session: SessionDep,
    settings: SettingsDep,
    write: AdminWrite,
) -> MonthPublic:
    """Close a month that has ended; nothing can be booked in it afterwards."""
    row = controls.close_month(
        session, month, actor=write.actor, today=_today(settings), note=body.note
    )
    return write.finish(MonthPublic.model_validate(row), 201)


@router.get("/ledger/invoices/{invoice_id}/check", response_model=InvoiceCheckPublic)
def check_invoice(
    invoice_id: str, session: SessionDep, caller: Reader
) -> InvoiceCheckPublic:
    """Compare an invoice with its orders' payments and the balance left for it."""
    return InvoiceCheckPublic.model_validate(ledger.check_invoice(session, invoice_id))


@router.get("/ledger/anomalies", response_model=list[CustomerAnomalyPublic])
def customer_anomalies(
    session: SessionDep,
    settings: SettingsDep,
    caller: Reader,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    as_of: date | None = None,
) -> list[CustomerAnomalyPublic]:
    """Return customer-level anomalies: unused balances, duplicates, over-advances."""
    found = reports.customer_anomalies(
        session,
        as_of=as_of or _today(settings),
        unused_days=settings.unused_balance_days,
        fee_max=settings.fee_max,
        customer_id=customer_id,
    )
    return [
        masked_for(
            caller.role, CustomerAnomalyPublic.model_validate(a), mask_report_row
        )
        for a in found
    ]


# Reports ---------------------------------------------------------------------------


def _options(
    settings: Settings, as_of: date | None, account: str | None, month: str | None
) -> reports.ReportOptions:
    return reports.ReportOptions(
        as_of=as_of or _today(settings),
        unused_days=settings.unused_balance_days,
        fee_max=settings.fee_max,
        account=account,
        month=month,
    )


def _report_rows(
    session: Session, name: str, options: reports.ReportOptions, caller: Caller
) -> tuple[tuple[str, ...], list[dict]]:
    """Return a report's rows, with payers' data masked for roles that need it."""
    columns, rows = reports.report_table(session, name, options)
    if needs_masking(caller.role):
        rows = [mask_report_row(row) for row in rows]
    return columns, rows


AccountQuery = Annotated[str | None, Query(max_length=64)]
MONTH_PATTERN = r"^[12]\d{3}-(0[1-9]|1[0-2])$"
MonthQuery = Annotated[str | None, Query(pattern=MONTH_PATTERN, examples=["2025-06"])]


@router.get("/reports/reconciliation", response_model=ReconciliationPublic)
def reconciliation(
    session: SessionDep,
    caller: Reader,
    account: Annotated[str, Query(min_length=1, max_length=64)],
    month: Annotated[str, Query(pattern=MONTH_PATTERN, examples=["2025-06"])],
) -> ReconciliationPublic:
    """Tie one bank account's month: bank balances, allocations and the ledger."""
    report = reports.reconciliation(session, account=account, month=month)
    return ReconciliationPublic.model_validate(report)


@router.get("/reports/{name}.{fmt}", **DOWNLOAD_ROUTE)
def report_file(
    name: ReportName,
    fmt: Format,
    session: SessionDep,
    settings: SettingsDep,
    caller: Reader,
    as_of: date | None = None,
    account: AccountQuery = None,
    month: MonthQuery = None,
) -> Response:
    """Export a report as CSV or XLSX; text cells never run as formulas."""
    options = _options(settings, as_of, account, month)
    columns, rows = _report_rows(session, name, options, caller)
    return exporting.response(exporting.Table(name, tuple(columns), rows), fmt)


@router.get("/reports/{name}", response_model=ReportPublic)
def report_json(
    name: TableName,
    session: SessionDep,
    settings: SettingsDep,
    caller: Reader,
    as_of: date | None = None,
    account: AccountQuery = None,
    month: MonthQuery = None,
) -> ReportPublic:
    """Return a report, such as the reminders, as columns and rows."""
    options = _options(settings, as_of, account, month)
    columns, rows = _report_rows(session, name, options, caller)
    return ReportPublic(
        name=name, as_of=options.as_of, columns=list(columns), rows=rows
    )
