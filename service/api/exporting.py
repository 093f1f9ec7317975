"""Tables for the CSV and XLSX exports: allocations, review tasks, ledgers.

The writers in `service.exports` neutralise text cells that a spreadsheet
would run as a formula, so memos and names from payers stay plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fastapi import Response
from sqlmodel import Session, select

from models.tables import LedgerEntry, ReviewTask, StatementLine
from service import ledger
from service.exports import STORED_ALLOCATION_COLUMNS, csv_text, xlsx_bytes
from service.results import line_rows

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TASK_COLUMNS = (
    "task_id",
    "line_ref",
    "account",
    "booking_date",
    "amount",
    "currency",
    "counterparty_name",
    "counterparty_account",
    "memo",
    "decision",
    "confidence",
    "anomaly_reasons",
    "claimed_by",
    "reason",
)
LEDGER_COLUMNS = (
    "entry_id",
    "customer_id",
    "booked_on",
    "created_at",
    "kind",
    "amount",
    "line_id",
    "order_id",
    "actor",
    "note",
)


@dataclass
class Table:
    """Rows to export with their columns and a file name without suffix."""

    name: str
    columns: tuple[str, ...]
    rows: list[dict]


def allocations_table(
    session: Session,
    *,
    account: str | None,
    date_from: date | None,
    date_to: date | None,
) -> Table:
    """Return the allocations output of the stored lines that pass the filters."""
    query = select(StatementLine)
    if account:
        query = query.where(StatementLine.account == account)
    if date_from:
        query = query.where(StatementLine.booking_date >= date_from)
    if date_to:
        query = query.where(StatementLine.booking_date <= date_to)
    lines = session.exec(query.order_by(StatementLine.id)).all()
    rows = line_rows(session, lines)
    return Table("allocations", STORED_ALLOCATION_COLUMNS, rows)


def review_tasks_table(session: Session) -> Table:
    """Return the open review tasks with their lines, oldest first."""
    query = (
        select(ReviewTask, StatementLine)
        .join(StatementLine, StatementLine.id == ReviewTask.line_id)
        .where(ReviewTask.status == "open")
        .order_by(ReviewTask.id)
    )
    rows = [
        {
            "task_id": task.id,
            "line_ref": line.line_ref,
            "account": line.account,
            "booking_date": line.booking_date.isoformat(),
            "amount": line.amount,
            "currency": line.currency,
            "counterparty_name": line.counterparty_name,
            "counterparty_account": line.counterparty_account,
            "memo": line.memo,
            "decision": line.decision or "",
            "confidence": line.confidence,
            "anomaly_reasons": "|".join(line.anomaly_reasons or ()),
            "claimed_by": task.claimed_by or "",
            "reason": task.reason,
        }
        for task, line in session.exec(query).all()
    ]
    return Table("review-tasks", TASK_COLUMNS, rows)


def ledger_table(session: Session, customer_id: str | None) -> Table:
    """Return ledger entries of one customer, or of all, in entry order.

    `booked_on` is the day an entry counts for in the books. Entries
    written before the ledger stored that day count on the day of their
    `created_at`, and their rows show that day.
    """
    query = select(LedgerEntry)
    if customer_id:
        query = query.where(LedgerEntry.customer_id == customer_id)
    rows = [
        {
            "entry_id": entry.id,
            "customer_id": entry.customer_id,
            "booked_on": ledger.entry_day(entry).isoformat(),
            "created_at": entry.created_at.isoformat(timespec="seconds"),
            "kind": entry.kind,
            "amount": entry.amount,
            "line_id": entry.line_id,
            "order_id": entry.order_id or "",
            "actor": entry.actor,
            "note": entry.note,
        }
        for entry in session.exec(query.order_by(LedgerEntry.id)).all()
    ]
    return Table("ledger", LEDGER_COLUMNS, rows)


def response(table: Table, fmt: str) -> Response:
    """Return the table as a CSV or XLSX download."""
    if fmt == "xlsx":
        content = xlsx_bytes(table.rows, table.columns, title=table.name)
        media_type = XLSX_TYPE
    else:
        # A byte-order mark makes spreadsheet programs read the file as UTF-8,
        # so Chinese names and memos open correctly.
        content = ("\ufeff" + csv_text(table.rows, table.columns)).encode("utf-8")
        media_type = "text/csv; charset=utf-8"
    disposition = f'attachment; filename="{table.name}.{fmt}"'
    return Response(
        content, media_type=media_type, headers={"Content-Disposition": disposition}
    )
