"""Database tables.

Every amount column is `Money` (Decimal in Python, integer cents in the
database). Rows that record money are never deleted: a mistake is reversed
by a new row or a status change, so the audit trail stays whole.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.money import Money


def utcnow() -> datetime:
    """Return the current time in UTC, timezone-aware."""
    return datetime.now(timezone.utc)


def money_field(*, nullable: bool = False, default: Any = ...) -> Any:
    """Declare a Money column."""
    if default is ...:
        return Field(sa_column=Column(Money(), nullable=nullable))
    return Field(default=default, sa_column=Column(Money(), nullable=nullable))


def json_field() -> Any:
    """Declare a JSON column holding a list or a dict."""
    return Field(default=None, sa_column=Column(JSON, nullable=True))


class Customer(SQLModel, table=True):
    """A customer of the company, as the ERP knows it."""

    __tablename__ = "customer"

    customer_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=300)
    tax_id: str | None = Field(default=None, max_length=64)
    credit_status: str = Field(default="normal", max_length=32)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class CustomerAlias(SQLModel, table=True):
    """Another name a customer pays under: from the master or learned."""

    __tablename__ = "customer_alias"
    __table_args__ = (UniqueConstraint("customer_id", "alias"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.customer_id", index=True)
    alias: str = Field(max_length=300, index=True)
    source: str = Field(default="master", max_length=16)


class CustomerAccount(SQLModel, table=True):
    """A bank account a customer pays from: from the master or learned."""

    __tablename__ = "customer_account"
    __table_args__ = (UniqueConstraint("customer_id", "account_number"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.customer_id", index=True)
    account_number: str = Field(max_length=64, index=True)
    source: str = Field(default="master", max_length=16)
    times_seen: int = 0


class SalesOrder(SQLModel, table=True):
    """An order; `open_amount` is the ERP's base less what Cashmatch booked."""

    __tablename__ = "sales_order"

    order_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(foreign_key="customer.customer_id", index=True)
    order_date: date
    due_date: date | None = None
    amount: Decimal = money_field()
    erp_open_amount: Decimal = money_field()
    open_amount: Decimal = money_field()
    currency: str = Field(default="CNY", max_length=3)
    deposit_amount: Decimal | None = money_field(nullable=True, default=None)
    status: str = Field(default="open", max_length=16, index=True)
    erp_as_of: datetime = Field(default_factory=utcnow)
    version: int = 1
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class Invoice(SQLModel, table=True):
    """An invoice issued to a customer against one or more orders."""

    __tablename__ = "invoice"

    invoice_id: str = Field(primary_key=True, max_length=64)
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    amount: Decimal = money_field()
    issue_date: date | None = None
    order_ids: list[str] | None = json_field()


class BankAccount(SQLModel, table=True):
    """One of our accounts that statements are imported for."""

    __tablename__ = "bank_account"

    account: str = Field(primary_key=True, max_length=64)
    currency: str = Field(default="CNY", max_length=3)
    time_zone: str = Field(default="Asia/Shanghai", max_length=64)


class ImportBatch(SQLModel, table=True):
    """One imported statement file and what its import did."""

    __tablename__ = "import_batch"

    id: int | None = Field(default=None, primary_key=True)
    file_name: str = Field(max_length=500)
    file_sha256: str = Field(max_length=64, index=True)
    format: str = Field(max_length=32)
    account: str = Field(max_length=64)
    statement_id: str | None = Field(default=None, max_length=128)
    opening_balance: Decimal | None = money_field(nullable=True, default=None)
    closing_balance: Decimal | None = money_field(nullable=True, default=None)
    # The day the statement gives its closing balance for. It is None when
    # the statement gives none, and for batches imported before the column.
    closing_date: date | None = None
    lines_total: int = 0
    lines_new: int = 0
    lines_already_imported: int = 0
    lines_rejected: int = 0
    status: str = Field(default="imported", max_length=16)
    actor: str = Field(default="system", max_length=128)
    voided_by: str | None = Field(default=None, max_length=128)
    voided_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class StatementLine(SQLModel, table=True):
    """A transaction on one of our statements, with the matcher's verdict."""

    __tablename__ = "statement_line"
    __table_args__ = (
        UniqueConstraint("account", "dedupe_key"),
        Index("ix_statement_line_account_ref", "account", "line_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account: str = Field(max_length=64)
    line_ref: str = Field(max_length=200)
    dedupe_key: str = Field(max_length=64)
    booking_date: date = Field(index=True)
    value_date: date | None = None
    amount: Decimal = money_field()
    currency: str = Field(default="CNY", max_length=3)
    counterparty_name: str = Field(default="", max_length=300)
    counterparty_account: str = Field(default="", max_length=64)
    memo: str = Field(default="", max_length=2000)
    bank_reference: str = Field(default="", max_length=200)
    channel: str = Field(default="transfer", max_length=16)
    transaction_type: str = Field(default="", max_length=64)
    is_reversal: bool = False
    unknown_type: bool = False
    batch_id: int | None = Field(default=None, foreign_key="import_batch.id")
    source_line: int | None = None
    status: str = Field(default="new", max_length=16, index=True)
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    decision: str | None = Field(default=None, max_length=16)
    confidence: float | None = None
    anomaly_score: float | None = None
    anomaly_reasons: list[str] | None = json_field()
    model_version: str | None = Field(default=None, max_length=64)
    suggestion: dict | None = json_field()
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)


class Allocation(SQLModel, table=True):
    """Money from one line booked to an order, a balance or as a bank fee."""

    __tablename__ = "allocation"

    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="statement_line.id", index=True)
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    order_id: str | None = Field(default=None, max_length=64, index=True)
    target: str = Field(max_length=16)
    amount: Decimal = money_field()
    status: str = Field(default="proposed", max_length=16, index=True)
    confidence: float | None = None
    decision: str | None = Field(default=None, max_length=16)
    model_version: str | None = Field(default=None, max_length=64)
    confirmed_by: str | None = Field(default=None, max_length=128)
    confirmed_at: datetime | None = None
    reversed_by: str | None = Field(default=None, max_length=128)
    reversed_at: datetime | None = None
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)


class LedgerEntry(SQLModel, table=True):
    """An append-only entry of a customer's prepayment ledger.

    `amount` is signed: a receipt adds to the balance, an application to an
    order, a refund or a fee takes from it. The balance is the sum.
    """

    __tablename__ = "ledger_entry"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.customer_id", index=True)
    kind: str = Field(max_length=16)
    amount: Decimal = money_field()
    line_id: int | None = Field(default=None, foreign_key="statement_line.id")
    allocation_id: int | None = Field(default=None, foreign_key="allocation.id")
    order_id: str | None = Field(default=None, max_length=64)
    reverses_id: int | None = Field(default=None, foreign_key="ledger_entry.id")
    invoice_id: str | None = Field(default=None, max_length=64)
    # The day the entry counts for in the books; never in a closed month.
    # Rows written before this column existed have None: their created_at.
    booked_on: date | None = Field(default=None, index=True)
    actor: str = Field(default="system", max_length=128)
    note: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow)


class LedgerRequest(SQLModel, table=True):
    """A refund, write-off or fee to take from a prepayment balance.

    Above the configured amount it waits (`pending`) until a second user
    approves it; `entry_id` is the ledger entry written on approval. A refund
    is paid by a money-out statement line, `payment_line_id`.
    """

    __tablename__ = "ledger_request"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.customer_id", index=True)
    kind: str = Field(max_length=16)
    amount: Decimal = money_field()
    status: str = Field(default="pending", max_length=16, index=True)
    source_line_id: int | None = Field(
        default=None, foreign_key="statement_line.id", index=True
    )
    payment_line_id: int | None = Field(
        default=None, foreign_key="statement_line.id", unique=True, index=True
    )
    entry_id: int | None = Field(default=None, foreign_key="ledger_entry.id")
    booked_on: date | None = None
    note: str = Field(default="", max_length=500)
    requested_by: str = Field(max_length=128)
    requested_at: datetime = Field(default_factory=utcnow)
    decided_by: str | None = Field(default=None, max_length=128)
    decided_at: datetime | None = None
    version: int = 1


class ClosedMonth(SQLModel, table=True):
    """A month of the books that is closed: nothing may be booked in it."""

    __tablename__ = "closed_month"

    month: str = Field(primary_key=True, max_length=7)
    closed_by: str = Field(max_length=128)
    closed_at: datetime = Field(default_factory=utcnow)
    note: str = Field(default="", max_length=500)


class ReviewTask(SQLModel, table=True):
    """A statement line waiting for a clerk."""

    __tablename__ = "review_task"

    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="statement_line.id", index=True)
    status: str = Field(default="open", max_length=16, index=True)
    reason: str = Field(default="", max_length=500)
    priority: float = 0.0
    claimed_by: str | None = Field(default=None, max_length=128)
    claim_expires_at: datetime | None = None
    decided_by: str | None = Field(default=None, max_length=128)
    decided_at: datetime | None = None
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)


class Label(SQLModel, table=True):
    """A review decision kept for training, with the candidates shown."""

    __tablename__ = "label"

    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="statement_line.id", index=True)
    review_task_id: int | None = Field(default=None, foreign_key="review_task.id")
    action: str = Field(max_length=32)
    chosen: dict | None = json_field()
    candidates: list | None = json_field()
    model_version: str | None = Field(default=None, max_length=64)
    actor: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Who did what to which record, and when."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=128)
    action: str = Field(max_length=64)
    entity: str = Field(max_length=32)
    entity_id: str = Field(max_length=64)
    detail: dict | None = json_field()


class User(SQLModel, table=True):
    """A person or service account that signs in or holds API keys."""

    __tablename__ = "app_user"

    name: str = Field(primary_key=True, max_length=128)
    password_hash: str | None = Field(default=None, max_length=256)
    role: str = Field(default="clerk", max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """An API key, stored only as a hash."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(max_length=128, unique=True)
    prefix: str = Field(max_length=16)
    user_name: str = Field(foreign_key="app_user.name")
    role: str = Field(max_length=16)
    revoked_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    """A trained model: where its file is, how it scored, whether it serves."""

    __tablename__ = "model_version"

    version: str = Field(primary_key=True, max_length=64)
    path: str = Field(max_length=1000)
    mlflow_run_id: str | None = Field(default=None, max_length=64)
    registry_version: str | None = Field(default=None, max_length=16)
    source: str = Field(default="history", max_length=32)
    metrics: dict | None = json_field()
    status: str = Field(default="candidate", max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    promoted_at: datetime | None = None


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a write that carried an Idempotency-Key."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("actor", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(max_length=128)
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int = 0
    body: dict | list | None = json_field()
    created_at: datetime = Field(default_factory=utcnow)


class WebhookEndpoint(SQLModel, table=True):
    """A URL that booked and reversed allocations are sent to.

    `secret` signs each delivery (HMAC-SHA256), so it is stored as given;
    the API never returns it. `cursor` is the last audit event id whose
    allocations were queued for this endpoint.
    """

    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=1000)
    secret: str = Field(max_length=200)
    description: str = Field(default="", max_length=300)
    active: bool = Field(default=True, index=True)
    cursor: int = 0
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow)
    disabled_at: datetime | None = None


class WebhookDelivery(SQLModel, table=True):
    """One event queued for one endpoint, with its delivery attempts.

    `status` is `pending` (waiting for its next attempt at
    `next_attempt_at`), `delivered` or `failed` (attempts used up).
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("endpoint_id", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="webhook_endpoint.id", index=True)
    event_id: str = Field(max_length=64)
    event_type: str = Field(max_length=32)
    payload: dict | None = json_field()
    status: str = Field(default="pending", max_length=16, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    last_status_code: int | None = None
    last_error: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
