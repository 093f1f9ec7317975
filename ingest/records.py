"""Plain records that statement readers produce and the matcher consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from models.errors import Problem

CHANNELS = ("transfer", "alipay", "wechat", "cash")


@dataclass(frozen=True)
class StatementRecord:
    """One statement line as read from a file, before it is stored.

    `amount` is signed: positive is money in. `line_ref` follows the rules
    for line references: the bank's transaction id, else `<file>:<n>`, with
    `#2`, `#3` suffixes where one id covers several lines.

    `bank_id` is the bank's own id for the transaction without any suffix,
    empty when the file gives none; de-duplication keys use it.
    `customer_reference` is the payer's reference where the format has a
    field for it (the MT940 `:61:` customer reference, a camt EndToEndId).
    `balance` is the running balance after the line when the file shows one.
    `source_line` is the line (or row) number in the file, counted from 1.
    """

    line_ref: str
    booking_date: date
    amount: Decimal
    currency: str
    counterparty_name: str = ""
    counterparty_account: str = ""
    memo: str = ""
    bank_reference: str = ""
    value_date: date | None = None
    channel: str = "transfer"
    transaction_type: str = ""
    is_reversal: bool = False
    unknown_type: bool = False
    source_line: int | None = None
    bank_id: str = ""
    customer_reference: str = ""
    balance: Decimal | None = None


@dataclass
class ParsedStatement:
    """A whole statement file read into records, with what it declares.

    `closing_date` is the day the closing balance is for, set only when the
    file dates its closing balance (MT940 `:62F:` or `:62M:`, camt CLBD
    `Dt`, OFX LEDGERBAL `DTASOF`).
    """

    file_name: str
    format: str
    lines: list[StatementRecord]
    account: str | None = None
    currency: str | None = None
    statement_id: str | None = None
    opening_balance: Decimal | None = None
    closing_balance: Decimal | None = None
    closing_date: date | None = None
    notes: list[str] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    encoding: str | None = None
    profile: str | None = None
    # Closing balance less opening balance plus lines, set only when an
    # unbalanced statement was accepted on request.
    balance_difference: Decimal | None = None

    @property
    def total(self) -> Decimal:
        """Sum of the signed line amounts."""
        return sum((line.amount for line in self.lines), Decimal("0"))


@dataclass(frozen=True)
class CustomerRecord:
    """A customer from the master data."""

    customer_id: str
    name: str
    aliases: tuple[str, ...] = ()
    bank_accounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderRecord:
    """A sales order as the ERP exported it."""

    order_id: str
    customer_id: str
    order_date: date
    amount: Decimal
    open_amount: Decimal
    currency: str = "CNY"
    deposit_amount: Decimal | None = None
    status: str = "open"


@dataclass(frozen=True)
class InvoiceRecord:
    """An invoice and the orders it bills."""

    invoice_id: str
    order_ids: tuple[str, ...]
    amount: Decimal
    issue_date: date | None = None


@dataclass(frozen=True)
class AllocationRecord:
    """One allocation row as the batch contract writes it."""

    line_ref: str
    customer_id: str
    order_id: str
    target: str
    amount: Decimal
