"""Reading a batch case folder into the database.

A case folder contains customers.csv, orders.csv, optionally invoices.csv, an
optional history (history/statement.* and history/allocations.csv) and the
statement to match. `reconcile` and `demo` share these steps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, time, timezone
from pathlib import Path

from sqlmodel import Session

from ingest import (
    read_allocations,
    read_customers,
    read_invoices,
    read_orders,
    read_statements,
)
from ingest.records import (
    AllocationRecord,
    InvoiceRecord,
    ParsedStatement,
    StatementRecord,
)
from models.errors import ImportFormatError
from models.tables import Allocation, StatementLine
from service import master
from service.imports import ImportReport, lines_for_keys, store_statements
from service.settings import Settings


@dataclass
class StatementFile:
    """A statement file read into records, with its bytes' digest."""

    path: Path
    statements: list[ParsedStatement]
    sha256: str

    @property
    def lines(self) -> list[StatementRecord]:
        """Every line of every statement in the file, in file order."""
        return [line for statement in self.statements for line in statement.lines]


@dataclass
class History:
    """A case's past lines and their confirmed allocations."""

    statement: StatementFile
    allocations: list[AllocationRecord]


def read_statement_file(path: Path, *, account: str | None = None) -> StatementFile:
    """Read a statement file of any supported format."""
    data = path.read_bytes()
    statements = read_statements(data, file_name=path.name, account=account)
    return StatementFile(path, statements, hashlib.sha256(data).hexdigest())


def find_statement(folder: Path) -> Path:
    """Return the folder's one `statement.*` file."""
    found = sorted(p for p in folder.glob("statement.*") if p.is_file())
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise ImportFormatError.at(
            str(folder),
            reason=f"expected exactly one statement.* file, found {names}; "
            "keep one or name the file with --statement",
        )
    return found[0]


def read_invoices_if_any(folder: Path) -> list[InvoiceRecord]:
    """Return the folder's invoices, or none when invoices.csv is absent."""
    path = folder / "invoices.csv"
    return read_invoices(path) if path.exists() else []


def load_master_folder(session: Session, folder: Path) -> None:
    """Store the folder's customers, orders and invoices."""
    as_of = datetime.now(timezone.utc)
    master.upsert_customers(session, read_customers(folder / "customers.csv"))
    master.upsert_orders(session, read_orders(folder / "orders.csv"), as_of=as_of)
    master.upsert_invoices(session, read_invoices_if_any(folder))


def read_history(folder: Path, settings: Settings) -> History | None:
    """Return the folder's history, or None when it has none."""
    history = folder / "history"
    allocations = history / "allocations.csv"
    statements = sorted(p for p in history.glob("statement.*") if p.is_file())
    if not allocations.exists() or not statements:
        return None
    statement = read_statement_file(statements[0], account=settings.default_account)
    return History(statement, read_allocations(allocations))


def store_statement_file(
    session: Session,
    statement: StatementFile,
    settings: Settings,
    *,
    actor: str,
    file_name: str | None = None,
) -> tuple[ImportReport, list[StatementLine]]:
    """Store a statement file; return the report and all its lines in order.

    The lines keep the line_refs of the file, even where stored lines of
    the account use them, because the allocations output and the history's
    allocations.csv name lines by those line_refs.
    """
    report = store_statements(
        session,
        statement.statements,
        settings,
        file_name=file_name or statement.path.name,
        file_sha256=statement.sha256,
        unique_line_refs=False,
        actor=actor,
    )
    return report, lines_for_keys(session, report.line_keys)


def store_history(session: Session, history: History, settings: Settings) -> int:
    """Store past lines with their confirmed allocations, dated when they paid.

    The orders' open amounts already include the history, so nothing is taken
    off them here; the allocations teach payers and feed training. Returns
    the number of allocations stored.
    """
    report, lines = store_statement_file(
        session,
        history.statement,
        settings,
        actor="history",
        file_name=f"history/{history.statement.path.name}",
    )
    new_ids = set(report.line_ids)
    stored = {line.line_ref: line for line in lines if line.id in new_ids}
    count = 0
    for row in history.allocations:
        line = stored.get(row.line_ref)
        if line is None or row.target == "none":
            continue
        _add_history_allocation(session, line, row)
        count += 1
    for line in stored.values():
        if line.status == "new":
            # A past line with no allocation belonged to no customer.
            line.status = "dismissed"
            line.decision = "history"
            session.add(line)
    session.flush()
    return count


def _add_history_allocation(
    session: Session, line: StatementLine, row: AllocationRecord
) -> None:
    target = row.target or ("order" if row.order_id else "balance")
    when = datetime.combine(line.booking_date, time(12), tzinfo=timezone.utc)
    session.add(
        Allocation(
            line_id=line.id,
            customer_id=row.customer_id or None,
            order_id=row.order_id or None,
            target=target,
            amount=row.amount,
            status="confirmed",
            decision="history",
            confirmed_by="history",
            confirmed_at=when,
        )
    )
    line.status = "allocated"
    line.decision = "history"
    line.customer_id = row.customer_id or None
    session.add(line)


def case_data(folder: Path, history: History | None):
    """Return the folder's master data and history as a `CaseData`."""
    from training.case import CaseData

    return CaseData(
        customers=read_customers(folder / "customers.csv"),
        orders=read_orders(folder / "orders.csv"),
        invoices=read_invoices_if_any(folder),
        history_lines=history.statement.lines if history else [],
        history_allocations=history.allocations if history else [],
    )
