"""Request and response bodies of the HTTP API.

One family per entity. `<Entity>Base` contains the fields a client sends
and reads. `<Entity>Create` is the body of a create or upsert.
`<Entity>Public` is what the API returns. Money is a Decimal with two places in Python and a
string such as "730.00" in JSON, so no client ever parses it as a float.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)

from features.text import normalize_account
from ingest.records import CHANNELS
from models.money import to_money

# Ids and versions are 32-bit integer columns; larger numbers are invalid.
MAX_INT = 2**31 - 1
# NUMERIC(18, 2): at most 16 digits before the point and 2 after it.
MONEY_LIMIT = 10**16
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _money_schema(*, signed: bool) -> dict:
    """Return the request schema of an amount: a decimal string or a number."""
    sign = "[+-]?" if signed else "[+]?"
    number: dict[str, Any] = {"type": "number", "exclusiveMaximum": MONEY_LIMIT}
    if signed:
        number["exclusiveMinimum"] = -MONEY_LIMIT
    else:
        number["minimum"] = 0
    return {
        "anyOf": [
            {"type": "string", "pattern": rf"^{sign}\d{{1,16}}(\.\d{{1,2}})?$"},
            number,
        ],
        "examples": ["730.00"],
    }


def _iso_text(pattern: re.Pattern, kind: str):
    def check(value: Any) -> Any:
        # Pydantic reads numbers as Unix timestamps; an ERP that sends a
        # number where a date belongs has a bug that should surface here.
        # Pydantic turns only ValueError into a 422, so no TypeError here.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            message = f"{kind} must be ISO 8601 text, got the number {value}"
            raise ValueError(message)  # noqa: TRY004
        if isinstance(value, str) and not pattern.match(value):
            raise ValueError(f"{kind} must be ISO 8601 text, got {value!r}")
        return value

    return check


# The request pattern of an amount in text, with ASCII digits only.
MONEY_TEXT = re.compile(r"^[+-]?[0-9]{1,16}(\.[0-9]{1,2})?$")


def _money_text(value: Any) -> Any:
    # Decimal reads exponents and full-width digits too; the schema allows
    # neither, so an amount in text must look like 730.00.
    if isinstance(value, str) and not MONEY_TEXT.match(value):
        raise ValueError(f"an amount must be a decimal like 730.00, got {value!r}")
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_money_text),
    Field(max_digits=18, decimal_places=2),
    AfterValidator(to_money),
    PlainSerializer(lambda value: f"{value:.2f}", return_type=str, when_used="json"),
    WithJsonSchema(_money_schema(signed=True), mode="validation"),
]
NonNegativeMoney = Annotated[
    Money, Field(ge=0), WithJsonSchema(_money_schema(signed=False), mode="validation")
]
IsoDate = Annotated[date, BeforeValidator(_iso_text(ISO_DATE, "a date"))]
IsoDateTime = Annotated[
    datetime, BeforeValidator(_iso_text(ISO_DATE_TIME, "a date and time"))
]
Identifier = Annotated[str, Field(min_length=1, max_length=64)]
Version = Annotated[int, Field(ge=1, le=MAX_INT)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["CNY"])]
Target = Literal["order", "balance", "fee"]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]


class RequestModel(BaseModel):
    """Base of request bodies: text may not contain NUL characters.

    PostgreSQL cannot store NUL in text columns, so such a value is rejected
    here with 422 on every database alike.
    """

    @field_validator("*", mode="after")
    @classmethod
    def _reject_nul(cls, value):
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text must not contain NUL characters (\\x00)")
        if isinstance(value, list) and any(
            isinstance(item, str) and "\x00" in item for item in value
        ):
            raise ValueError("text must not contain NUL characters (\\x00)")
        return value


class ErrorBody(BaseModel):
    """Every error response: a readable detail and a stable code."""

    detail: Any
    code: str


# Statement lines -------------------------------------------------------------


class LineBase(RequestModel):
    """A statement line as the bank reported it."""

    account: str | None = Field(
        default=None,
        max_length=64,
        description="Our account; the configured default account when empty",
    )
    line_ref: str = Field(min_length=1, max_length=200)
    booking_date: IsoDate
    value_date: IsoDate | None = None
    amount: Money = Field(description="Signed; positive is money in")
    currency: Currency | None = Field(
        default=None, description="The account's currency when empty"
    )
    counterparty_name: str = Field(default="", max_length=300)
    counterparty_account: str = Field(default="", max_length=64)
    memo: str = Field(default="", max_length=2000)
    bank_reference: str = Field(default="", max_length=200)
    channel: Channel = "transfer"


class LineCreate(LineBase):
    """A line posted to `POST /v1/match`."""

    @field_validator("amount")
    @classmethod
    def _moves_money(cls, amount: Decimal) -> Decimal:
        if amount == 0:
            raise ValueError("a line of 0.00 moves no money; leave it out")
        return amount


class LinePublic(LineBase):
    """A stored line with the matcher's verdict and its version."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    account: str
    currency: str
    status: str
    decision: str | None
    confidence: float | None
    anomaly_score: float | None
    anomaly_reasons: list[str] | None
    model_version: str | None
    customer_id: str | None
    version: int = Field(description="Send it back with a change; a stale one gets 409")


class AllocationRow(BaseModel):
    """One row of the allocations output."""

    line_ref: str
    customer_id: str
    order_id: str
    target: Literal["order", "balance", "fee", "none"]
    amount: Money
    confidence: float
    decision: str
    anomaly_score: float
    anomaly_reasons: str
    allocation_id: int | None = None
    allocation_status: str | None = None


class MatchRequest(RequestModel):
    """Lines to store and match; with `dry_run` nothing is stored."""

    lines: list[LineCreate] = Field(min_length=1, max_length=5000)
    dry_run: bool = False


class MatchedLine(BaseModel):
    """A line's allocations, reasons and whether it was stored before."""

    line_id: int | None
    account: str
    line_ref: str
    version: int | None
    status: str
    decision: str
    already_stored: bool
    reasons: list[str]
    allocations: list[AllocationRow]


class MatchResponse(BaseModel):
    """The result of `POST /v1/match`."""

    model_version: str
    dry_run: bool
    lines: list[MatchedLine]


class ImportPublic(BaseModel):
    """Result of importing an uploaded statement file."""

    file_name: str
    batch_ids: list[int]
    lines_total: int
    lines_new: int
    lines_already_imported: int
    lines_rejected: int
    skipped: list[str]
    notes: list[str]
    decisions: dict[str, int]
    summary: str


class VoidRequest(RequestModel):
    """Why an import batch is voided."""

    reason: str = Field(min_length=1, max_length=500)


class VoidPublic(BaseModel):
    """What voiding an import batch undid."""

    batch_id: int
    file_name: str
    lines_voided: int
    allocations_reversed: int
    proposals_rejected: int
    review_tasks_closed: int
    orders_reopened: list[str]
    bank_reversals: list[str]
    summary: str


# Master data -------------------------------------------------------------------


class CustomerBase(RequestModel):
    """A customer as the ERP records it."""

    customer_id: Identifier
    name: str = Field(min_length=1, max_length=300)
    aliases: list[Annotated[str, Field(max_length=300)]] = Field(default_factory=list)
    bank_accounts: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list
    )

    @field_validator("bank_accounts", mode="after")
    @classmethod
    def _drop_repeated_accounts(cls, accounts: list[str]) -> list[str]:
        # "6222 001" and "6222001" are one account once normalised, and the
        # database stores each account of a customer once.
        seen: set[str] = set()
        kept = []
        for account in accounts:
            number = normalize_account(account)
            if number not in seen:
                seen.add(number)
                kept.append(account)
        return kept


class CustomerCreate(CustomerBase):
    """A customer to create or update."""


class CustomerPublic(CustomerBase):
    """A stored customer with its prepayment balance."""

    balance: Money


class OrderBase(RequestModel):
    """A sales order as the ERP exported it."""

    order_id: Identifier
    customer_id: Identifier
    order_date: IsoDate
    amount: NonNegativeMoney
    open_amount: NonNegativeMoney = Field(
        description="Open amount as of the ERP's export"
    )
    currency: Currency = "CNY"
    deposit_amount: NonNegativeMoney | None = None
    status: Literal["open", "partly_paid", "paid", "closed", "cancelled"] = "open"


class OrderCreate(OrderBase):
    """An order to create or update."""


class OrderPublic(OrderBase):
    """A stored order; `open_amount` includes what Cashmatch booked since."""

    model_config = ConfigDict(from_attributes=True)

    erp_open_amount: Money
    version: int


class InvoiceBase(RequestModel):
    """An invoice and the orders it bills."""

    invoice_id: Identifier
    order_ids: list[Identifier] = Field(min_length=1)
    amount: Money
    issue_date: IsoDate | None = None


class InvoiceCreate(InvoiceBase):
    """An invoice to create or update."""


class InvoiceCheck(BaseModel):
    """An invoice compared with what its customer paid and prepaid."""

    invoice_id: str
    customer_id: str | None
    amount: Money
    paid_to_orders: Money
    prepayment_balance: Money
    covered: bool
    shortfall: Money


class InvoicePublic(InvoiceBase):
    """A stored invoice with its check."""

    check: InvoiceCheck


class CustomersUpsert(RequestModel):
    """Customers to create or update."""

    customers: list[CustomerCreate] = Field(min_length=1, max_length=10000)


class OrdersUpsert(RequestModel):
    """Orders to create or update, with when the ERP took the open amounts."""

    orders: list[OrderCreate] = Field(min_length=1, max_length=10000)
    as_of: IsoDateTime | None = Field(
        default=None,
        description="When the ERP exported the open amounts; now when empty",
    )


class InvoicesUpsert(RequestModel):
    """Invoices to create or update."""

    invoices: list[InvoiceCreate] = Field(min_length=1, max_length=10000)


class UpsertReport(BaseModel):
    """How many records were created and updated."""

    created: int
    updated: int
    released: list[AllocationRow] = Field(
        default_factory=list,
        description="Allocations moved to prepayment balances from cancelled orders",
    )
    invoice_checks: list[InvoiceCheck] = Field(default_factory=list)


# Allocations and decisions -------------------------------------------------------


class AllocationCreate(RequestModel):
    """One allocation to book; `fee` is a shortfall, not money from the line."""

    target: Target
    amount: Money
    customer_id: Identifier
    order_id: Identifier | None = None


class ConfirmRequest(RequestModel):
    """Confirm a line; without allocations, its suggestion is confirmed."""

    version: Version = Field(description="The line version the client saw")
    allocations: list[AllocationCreate] | None = Field(default=None, min_length=1)


class ChangeRequest(RequestModel):
    """Replace a booked line's allocations."""

    version: Version
    allocations: list[AllocationCreate] = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=300)


class ReverseRequest(RequestModel):
    """Reverse a booked line; it goes back to the review queue."""

    version: Version
    reason: str = Field(min_length=1, max_length=300)


class LineResult(BaseModel):
    """A line with its rows, as read or after a decision."""

    line: LinePublic
    allocations: list[AllocationRow]
    label_id: int | None = None
    task_id: int | None = Field(
        default=None,
        description="The line's review task. A read returns its open task, "
        "else its latest one; a confirm, change or reverse returns the task "
        "it closed or opened. None when the line has no review task.",
    )


# Review tasks -------------------------------------------------------------------


class TaskPublic(BaseModel):
    """A review task with its line and the shown candidates."""

    id: int
    status: str
    reason: str
    priority: float
    claimed_by: str | None
    claim_expires_at: datetime | None
    version: int
    flagged: bool
    line: LinePublic
    candidates: list[dict]


class TaskPage(BaseModel):
    """A page of the review queue with counts over all matching tasks."""

    total: int
    counts: dict[str, dict[str, int]]
    items: list[TaskPublic]


class DecisionRequest(RequestModel):
    """A clerk's decision on a review task."""

    action: Literal["accept", "choose", "split", "balance", "not_customer", "refund"]
    version: Version | None = Field(default=None, description="The line version seen")
    candidate: int | None = Field(default=None, ge=0, le=1000)
    allocations: list[AllocationCreate] | None = None
    customer_id: Identifier | None = None
    note: str = Field(default="", max_length=300)


# Balances and feed -------------------------------------------------------------


class LedgerEntryPublic(BaseModel):
    """One entry of a prepayment ledger; `amount` is signed."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    amount: Money
    line_id: int | None
    allocation_id: int | None
    order_id: str | None
    actor: str
    note: str
    created_at: datetime


class BalancePublic(BaseModel):
    """A customer's prepayment balance, the sum of its ledger."""

    customer_id: str
    balance: Money
    entries: list[LedgerEntryPublic]


class FeedEvent(BaseModel):
    """An allocation booked or reversed; `cursor` orders the feed."""

    cursor: int
    event: Literal["booked", "reversed"]
    at: datetime
    actor: str
    line_id: int
    line_ref: str
    allocation_id: int | None
    customer_id: str | None
    order_id: str | None
    target: str
    amount: Money


class FeedPage(BaseModel):
    """Feed events after a cursor; pass `next_cursor` to read on."""

    events: list[FeedEvent]
    next_cursor: int


class AuditEventPublic(BaseModel):
    """One audit event."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    detail: dict | None


# Webhooks ------------------------------------------------------------------------


class WebhookCreate(RequestModel):
    """A URL to receive booked and reversed allocations, and its secret."""

    url: str = Field(
        min_length=8,
        max_length=1000,
        pattern=r"^https?://[^\s/]+",
        examples=["https://erp.example/cashmatch-events"],
    )
    secret: str = Field(
        min_length=16,
        max_length=200,
        description="Signs each delivery (HMAC-SHA256); never returned",
    )
    description: str = Field(default="", max_length=300)


class WebhookPublic(BaseModel):
    """A registered webhook endpoint; its secret is never shown."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    description: str
    active: bool
    created_by: str
    created_at: datetime
    disabled_at: datetime | None


class WebhookDeliveryPublic(BaseModel):
    """One event queued for one endpoint, with its attempts so far."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
