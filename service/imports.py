"""Storing parsed statements: new lines in, re-imported lines recognised.

A file's statements are stored in the caller's transaction, so a failure
anywhere leaves the database as it was.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, select

from ingest import dedupe_keys, read_statements
from ingest.records import ParsedStatement
from models.errors import Problem
from models.tables import AuditEvent, BankAccount, ImportBatch, StatementLine
from service.settings import Settings

log = logging.getLogger("cashmatch.service")


@dataclass
class ImportReport:
    """Counts of an import: lines new, already imported and rejected."""

    file_name: str
    batch_ids: list[int] = field(default_factory=list)
    line_ids: list[int] = field(default_factory=list)
    line_keys: list[tuple[str, str]] = field(default_factory=list)
    lines_total: int = 0
    lines_new: int = 0
    lines_already_imported: int = 0
    skipped: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def lines_rejected(self) -> int:
        """Lines left out because they could not be read."""
        return len(self.skipped)

    def summary(self) -> str:
        """Return one sentence for a clerk or an operator."""
        text = (
            f"{self.file_name}: {self.lines_total} lines, {self.lines_new} new, "
            f"{self.lines_already_imported} already imported"
        )
        if self.skipped:
            text += f", {self.lines_rejected} rejected"
        return text


def import_file(
    session: Session,
    path: Path,
    settings: Settings,
    *,
    account: str | None = None,
    profile: str | None = None,
    skip_bad_lines: bool = False,
    actor: str = "system",
) -> ImportReport:
    """Read a statement file and store its lines; see `store_statements`."""
    data = path.read_bytes()
    statements = read_statements(
        data,
        file_name=path.name,
        account=account,
        profile=profile,
        skip_bad_lines=skip_bad_lines,
    )
    return store_statements(
        session,
        statements,
        settings,
        file_name=path.name,
        file_sha256=hashlib.sha256(data).hexdigest(),
        actor=actor,
    )


def store_statements(
    session: Session,
    statements: list[ParsedStatement],
    settings: Settings,
    *,
    file_name: str,
    file_sha256: str,
    actor: str = "system",
) -> ImportReport:
    """Store each statement as an import batch with its new lines.

    A line whose de-duplication key is already stored for the account is
    counted as already imported and not stored again.
    """
    report = ImportReport(file_name=file_name)
    for statement in statements:
        _store_one(session, statement, settings, report, file_sha256, actor)
    session.flush()
    session.add(
        AuditEvent(
            actor=actor,
            action="import",
            entity="import_batch",
            entity_id=",".join(str(i) for i in report.batch_ids),
            detail={
                "file": file_name,
                "new": report.lines_new,
                "already_imported": report.lines_already_imported,
                "rejected": report.lines_rejected,
            },
        )
    )
    log.info(
        "imported %s: batches %s, %d new, %d already imported, %d rejected",
        file_name,
        report.batch_ids,
        report.lines_new,
        report.lines_already_imported,
        report.lines_rejected,
    )
    return report


def _store_one(
    session: Session,
    statement: ParsedStatement,
    settings: Settings,
    report: ImportReport,
    file_sha256: str,
    actor: str,
) -> None:
    account = statement.account or settings.default_account
    _ensure_account(session, account, statement.currency or settings.default_currency)
    keys = dedupe_keys(statement, account=account)
    known = _known_keys(session, account, keys)

    batch = ImportBatch(
        file_name=statement.file_name,
        file_sha256=file_sha256,
        format=statement.format,
        account=account,
        statement_id=statement.statement_id,
        opening_balance=statement.opening_balance,
        closing_balance=statement.closing_balance,
        lines_total=len(statement.lines),
        lines_rejected=len(getattr(statement, "skipped", ()) or ()),
        actor=actor,
    )
    session.add(batch)
    session.flush()

    new_lines = []
    for record, key in zip(statement.lines, keys, strict=True):
        if key in known:
            continue
        new_lines.append(_line_row(record, key, account, batch.id))
    session.add_all(new_lines)
    session.flush()

    batch.lines_new = len(new_lines)
    batch.lines_already_imported = len(statement.lines) - len(new_lines)
    session.add(batch)
    report.batch_ids.append(batch.id)
    report.line_keys += [(account, key) for key in keys]
    report.line_ids += [line.id for line in new_lines]
    report.lines_total += len(statement.lines)
    report.lines_new += batch.lines_new
    report.lines_already_imported += batch.lines_already_imported
    report.skipped += list(getattr(statement, "skipped", ()) or ())
    report.notes += statement.notes


def _ensure_account(session: Session, account: str, currency: str) -> None:
    if session.get(BankAccount, account) is None:
        session.add(BankAccount(account=account, currency=currency))
        session.flush()


def _known_keys(session: Session, account: str, keys: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        query = select(StatementLine.dedupe_key).where(
            StatementLine.account == account, StatementLine.dedupe_key.in_(chunk)
        )
        known.update(session.exec(query).all())
    return known


def _line_row(record, key: str, account: str, batch_id: int) -> StatementLine:
    return StatementLine(
        account=account,
        line_ref=record.line_ref,
        dedupe_key=key,
        booking_date=record.booking_date,
        value_date=record.value_date,
        amount=record.amount,
        currency=record.currency,
        counterparty_name=record.counterparty_name,
        counterparty_account=record.counterparty_account,
        memo=record.memo,
        bank_reference=record.bank_reference,
        channel=record.channel,
        transaction_type=record.transaction_type,
        is_reversal=record.is_reversal,
        unknown_type=record.unknown_type,
        batch_id=batch_id,
        source_line=record.source_line,
    )


def lines_for_keys(
    session: Session, keys: list[tuple[str, str]]
) -> list[StatementLine]:
    """Return the stored lines with these (account, key) pairs, in that order."""
    found: dict[tuple[str, str], StatementLine] = {}
    accounts = {account for account, _ in keys}
    for account in accounts:
        wanted = [key for acct, key in keys if acct == account]
        for start in range(0, len(wanted), 500):
            query = select(StatementLine).where(
                StatementLine.account == account,
                StatementLine.dedupe_key.in_(wanted[start : start + 500]),
            )
            for line in session.exec(query).all():
                found[(account, line.dedupe_key)] = line
    return [found[key] for key in keys]
