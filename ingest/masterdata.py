"""Loaders for the master-data CSVs of a batch case folder.

Each loader reads the whole file, collects every bad row and raises one
ImportFormatError naming file, line, field, value and the fix, so a clerk
can correct the file in one pass. Lists inside a cell are split by `|`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from ingest.encoding import decode_bytes
from ingest.problems import ProblemList
from ingest.records import (
    AllocationRecord,
    CustomerRecord,
    InvoiceRecord,
    OrderRecord,
)
from ingest.tabular import Row, csv_rows
from ingest.values import DOT, ValueProblem, parse_amount

log = logging.getLogger("cashmatch.ingest")

ORDER_STATUSES = ("open", "partly_paid", "paid", "closed", "cancelled")
TARGETS = ("order", "balance", "fee", "none")

T = TypeVar("T")


class _Table:
    """The rows of one master-data file, with its header mapped to columns."""

    def __init__(self, path: Path, required: tuple[str, ...]):
        self.file_name = path.name
        self.problems = ProblemList(path.name)
        decoded = decode_bytes(path.read_bytes(), file_name=path.name,
                               fallbacks=("gb18030",), detect=False)
        rows = [row for row in csv_rows(decoded.text, ",") if not row.is_blank()]
        if not rows:
            self.problems.file("the file is empty; it needs a header row with "
                               f"the columns {', '.join(required)}")
            self.problems.raise_if_any()
        self.columns = {
            name.strip().lower(): i for i, name in enumerate(rows[0].cells)
        }
        missing = [name for name in required if name not in self.columns]
        if missing:
            self.problems.file(
                f"missing columns {', '.join(missing)}; the header must name "
                f"{', '.join(required)}",
                line=rows[0].number, field="header", value=",".join(rows[0].cells),
            )
            self.problems.raise_if_any()
        self.rows = rows[1:]

    def cell(self, row: Row, name: str) -> str:
        return row.cell(self.columns[name]) if name in self.columns else ""

    def text(self, row: Row, name: str) -> str:
        value = self.cell(row, name)
        if not value:
            self.problems.line(row.number, name, value,
                               f"{name} is empty; every row needs one")
        return value

    def amount(self, row: Row, name: str, *, optional: bool = False) -> Decimal | None:
        value = self.cell(row, name)
        if optional and not value:
            return None
        try:
            return parse_amount(value, DOT)
        except ValueProblem:
            self.problems.line(row.number, name, value,
                               "not an amount; write it with a decimal point "
                               "and no thousands separator, such as 1250.50")
            return None

    def date(self, row: Row, name: str, *, optional: bool = False) -> date | None:
        value = self.cell(row, name)
        if optional and not value:
            return None
        try:
            return date.fromisoformat(value.replace("/", "-"))
        except ValueError:
            self.problems.line(row.number, name, value,
                               "not a date; write it as YYYY-MM-DD, such as "
                               "2025-06-01")
            return None

    def unique(self, row: Row, name: str, value: str, seen: dict[str, int]) -> None:
        if value in seen:
            self.problems.line(row.number, name, value,
                               f"duplicate {name}; it already appears on line "
                               f"{seen[value]}, so keep one row per {name}")
        seen.setdefault(value, row.number)

    def finish(self, records: list[T]) -> list[T]:
        self.problems.raise_if_any()
        log.info("read %d rows from %s", len(records), self.file_name)
        return records


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split("|") if part.strip())


def _read(path: Path, required: tuple[str, ...],
          build: Callable[[_Table, Row], T | None]) -> list[T]:
    table = _Table(Path(path), required)
    records = []
    for row in table.rows:
        before = len(table.problems.line_problems)
        record = build(table, row)
        if record is not None and len(table.problems.line_problems) == before:
            records.append(record)
    return table.finish(records)


def read_customers(path: Path) -> list[CustomerRecord]:
    """Read customers.csv: customer_id, name, aliases, bank_accounts."""
    seen: dict[str, int] = {}

    def build(table: _Table, row: Row) -> CustomerRecord:
        customer_id = table.text(row, "customer_id")
        table.unique(row, "customer_id", customer_id, seen)
        return CustomerRecord(
            customer_id=customer_id,
            name=table.text(row, "name"),
            aliases=_split(table.cell(row, "aliases")),
            bank_accounts=_split(table.cell(row, "bank_accounts")),
        )

    return _read(path, ("customer_id", "name"), build)


def read_orders(path: Path) -> list[OrderRecord]:
    """Read orders.csv; see the batch contract for the columns."""
    seen: dict[str, int] = {}
    required = ("order_id", "customer_id", "order_date", "amount", "open_amount")

    def build(table: _Table, row: Row) -> OrderRecord | None:
        order_id = table.text(row, "order_id")
        table.unique(row, "order_id", order_id, seen)
        customer_id = table.text(row, "customer_id")
        order_date = table.date(row, "order_date")
        amount = table.amount(row, "amount")
        open_amount = table.amount(row, "open_amount")
        deposit = table.amount(row, "deposit_amount", optional=True)
        status = _status(table, row)
        currency = _currency(table, row)
        if amount is None or open_amount is None or order_date is None:
            return None
        _check_open(table, row, amount, open_amount)
        return OrderRecord(
            order_id=order_id,
            customer_id=customer_id,
            order_date=order_date,
            amount=amount,
            open_amount=open_amount,
            currency=currency,
            deposit_amount=deposit,
            status=status,
        )

    return _read(path, required, build)


def _status(table: _Table, row: Row) -> str:
    value = table.cell(row, "status").strip()
    status = value.lower().replace(" ", "_").replace("-", "_") or "open"
    if status not in ORDER_STATUSES:
        table.problems.line(row.number, "status", value,
                            f"unknown status; use one of {', '.join(ORDER_STATUSES)}")
    return status


def _currency(table: _Table, row: Row) -> str:
    value = table.cell(row, "currency").strip().upper() or "CNY"
    if len(value) != 3 or not value.isalpha():
        table.problems.line(row.number, "currency", value,
                            "not a currency code; use three letters such as CNY")
    return value


def _check_open(table: _Table, row: Row, amount: Decimal, open_amount: Decimal) -> None:
    if open_amount < 0 or open_amount > amount:
        table.problems.line(row.number, "open_amount", str(open_amount),
                            f"open amount must be between 0.00 and the order "
                            f"amount {amount}; export the open amount again")


def read_invoices(path: Path) -> list[InvoiceRecord]:
    """Read invoices.csv: invoice_id, order_ids, amount, issue_date."""
    seen: dict[str, int] = {}

    def build(table: _Table, row: Row) -> InvoiceRecord | None:
        invoice_id = table.text(row, "invoice_id")
        table.unique(row, "invoice_id", invoice_id, seen)
        order_ids = _split(table.cell(row, "order_ids"))
        if not order_ids:
            table.problems.line(row.number, "order_ids", table.cell(row, "order_ids"),
                                "no order; list the invoice's orders split by |")
        amount = table.amount(row, "amount")
        issue_date = table.date(row, "issue_date", optional=True)
        if amount is None:
            return None
        return InvoiceRecord(invoice_id, order_ids, amount, issue_date)

    return _read(path, ("invoice_id", "order_ids", "amount"), build)


def read_allocations(path: Path) -> list[AllocationRecord]:
    """Read allocations.csv: line_ref, customer_id, order_id, target, amount.

    Without a target column, a row with an order is `order` and a row
    without one is `balance`.
    """
    required = ("line_ref", "customer_id", "order_id", "amount")

    def build(table: _Table, row: Row) -> AllocationRecord | None:
        line_ref = table.text(row, "line_ref")
        customer_id = table.cell(row, "customer_id")
        order_id = table.cell(row, "order_id")
        target = _target(table, row, order_id)
        if not customer_id and target != "none":
            table.problems.line(row.number, "customer_id", customer_id,
                                "customer_id is empty; only target none may "
                                "leave it empty")
        if target in ("order", "fee") and not order_id:
            table.problems.line(row.number, "order_id", order_id,
                                f"target {target} needs an order_id")
        amount = table.amount(row, "amount")
        if amount is None:
            return None
        return AllocationRecord(line_ref, customer_id, order_id, target, amount)

    return _read(path, required, build)


def _target(table: _Table, row: Row, order_id: str) -> str:
    value = table.cell(row, "target").strip().lower()
    if not value:
        return "order" if order_id else "balance"
    if value not in TARGETS:
        table.problems.line(row.number, "target", value,
                            f"unknown target; use one of {', '.join(TARGETS)}")
    return value
