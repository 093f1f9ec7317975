"""Storing statement files: each transaction once, and all of a file or nothing.

A file's statements are stored in the caller's transaction. A failure
anywhere, or a process killed in the middle, therefore leaves the database
as it was: no batch row, no line and no audit event of the failed import.

New lines are inserted with `ON CONFLICT (account, dedupe_key) DO NOTHING`,
so the unique constraint, not an earlier read, decides what is new. Two
imports of one file at the same time therefore store each line once. On
PostgreSQL the second insert waits for the first transaction and then skips
its rows. On SQLite the `BEGIN IMMEDIATE` write lock runs the imports one
after the other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session, select

from ingest import dedupe_keys, read_statements
from ingest.records import ParsedStatement, StatementRecord
from models.errors import ImportFormatError, Problem
from models.tables import (
    AuditEvent,
    BankAccount,
    ImportBatch,
    StatementLine,
    utcnow,
)
from service.accounts import (
    NO_SETUP,
    AccountSetup,
    account_setup,
    check_account_setup,
)
from service.settings import Settings

log = logging.getLogger("cashmatch.service")

# Rows per INSERT statement and keys per IN list. Both stay far below the
# bound-parameter limits of SQLite (32766) and PostgreSQL (65535).
INSERT_CHUNK = 1000
QUERY_CHUNK = 500

FOREIGN_CURRENCY = "foreign_currency"

# Free text longer than its column is cut with a note. An identifier that
# long rejects the file, because a cut identifier would name another thing.
_FREE_TEXT = ("memo", "counterparty_name")
_IDENTIFIERS = (
    "line_ref",
    "bank_reference",
    "counterparty_account",
    "transaction_type",
)


@dataclass
class ImportReport:
    """Counts of an import's lines (new, already imported, rejected) and why.

    `lines_total` counts every line read, rejected ones included, so it is
    the sum of the other three counts. `line_keys` lists the (account,
    dedupe key) of every line not rejected, in file order, new or not, and
    `line_ids` the ids of the new lines only. `already_imported_by` counts,
    per earlier batch id, the lines of this file that batch stored (the key
    None stands for an import that ran at the same time).
    `balance_differences` maps a batch id to the difference of its
    statement when an unbalanced statement was accepted.
    """

    file_name: str
    batch_ids: list[int] = field(default_factory=list)
    line_ids: list[int] = field(default_factory=list)
    line_keys: list[tuple[str, str]] = field(default_factory=list)
    lines_total: int = 0
    lines_new: int = 0
    lines_already_imported: int = 0
    already_imported_by: Counter[int | None] = field(default_factory=Counter)
    skipped: list[Problem] = field(default_factory=list)
    foreign_currency: list[str] = field(default_factory=list)
    balance_differences: dict[int, Decimal] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def lines_rejected(self) -> int:
        """Lines left out because they could not be read."""
        return len(self.skipped)

    def summary(self) -> str:
        """Return one sentence with the counts, for a clerk or an operator."""
        return (
            f"{self.file_name}: {_plural(self.lines_total, 'line')}, "
            f"{self.lines_new} new, {self.lines_already_imported} already "
            f"imported, {self.lines_rejected} rejected"
        )

    def details(self) -> list[str]:
        """Return one line per reason behind the counts, then the notes."""
        messages = []
        for batch_id, count in sorted(
            self.already_imported_by.items(), key=lambda item: item[0] or 0
        ):
            source = (
                "an import that ran at the same time"
                if batch_id is None
                else f"batch {batch_id}"
            )
            messages.append(
                f"already imported: {_plural(count, 'line')} stored by {source}"
            )
        messages += [f"rejected: {problem}" for problem in self.skipped]
        if self.foreign_currency:
            refs = ", ".join(self.foreign_currency[:10])
            more = len(self.foreign_currency) - 10
            refs += f" and {more} more" if more > 0 else ""
            messages.append(
                f"foreign currency: {_plural(len(self.foreign_currency), 'line')} "
                f"not in the account's currency, flagged {FOREIGN_CURRENCY} ({refs})"
            )
        for batch_id, difference in self.balance_differences.items():
            messages.append(
                f"unbalanced: batch {batch_id} was accepted with a "
                f"difference of {difference}"
            )
        messages += [f"note: {note}" for note in self.notes]
        return messages


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def import_file(
    session: Session,
    path: Path,
    settings: Settings,
    *,
    account: str | None = None,
    profile: str | None = None,
    currency: str | None = None,
    time_zone: str | None = None,
    skip_bad_lines: bool = False,
    accept_unbalanced: bool = False,
    actor: str = "system",
) -> ImportReport:
    """Read a statement file and store its lines; see `import_bytes`."""
    return import_bytes(
        session,
        path.read_bytes(),
        settings,
        file_name=path.name,
        account=account,
        profile=profile,
        currency=currency,
        time_zone=time_zone,
        skip_bad_lines=skip_bad_lines,
        accept_unbalanced=accept_unbalanced,
        actor=actor,
    )


def import_bytes(
    session: Session,
    data: bytes,
    settings: Settings,
    *,
    file_name: str,
    account: str | None = None,
    profile: str | None = None,
    currency: str | None = None,
    time_zone: str | None = None,
    skip_bad_lines: bool = False,
    accept_unbalanced: bool = False,
    actor: str = "system",
) -> ImportReport:
    """Read statement bytes in each account's time zone and store the lines.

    `currency` (an ISO 4217 code) and `time_zone` (an IANA name) set up an
    account that the import creates. An account already stored must have
    the same values, if given.

    Raises InvalidAccountSetup for a currency or time zone that cannot be
    used, and AccountSetupConflict when a stored account has another one.
    Raises ImportFormatError (nothing stored) when the file cannot be read,
    has a line that cannot be read and `skip_bad_lines` is off, or has a
    statement whose balances do not add up and `accept_unbalanced` is off.
    """
    setup = account_setup(currency=currency, time_zone=time_zone)
    statements = read_for_import(
        session,
        data,
        settings,
        file_name=file_name,
        account=account,
        profile=profile,
        setup=setup,
        skip_bad_lines=skip_bad_lines,
        accept_unbalanced=accept_unbalanced,
    )
    return store_statements(
        session,
        statements,
        settings,
        file_name=file_name,
        file_sha256=hashlib.sha256(data).hexdigest(),
        setup=setup,
        actor=actor,
    )


def read_for_import(
    session: Session,
    data: bytes,
    settings: Settings,
    *,
    file_name: str,
    account: str | None = None,
    profile: str | None = None,
    setup: AccountSetup = NO_SETUP,
    skip_bad_lines: bool = False,
    accept_unbalanced: bool = False,
) -> list[ParsedStatement]:
    """Read a statement file with each account's time zone and currency.

    Dates are calendar dates in the time zone of the account a statement
    belongs to (`BankAccount.time_zone`, else `setup.time_zone`, else the
    `time_zone` setting), and a line without a currency takes the
    account's. A file that names an account stored with another zone or
    currency than the first read used is read again for that account's
    statements.

    Raises AccountSetupConflict when a statement's account is stored with
    another currency or time zone than `setup` gives.
    """
    options = {
        "file_name": file_name,
        "account": account or settings.default_account,
        "profile": profile,
        "skip_bad_lines": skip_bad_lines,
        "accept_unbalanced": accept_unbalanced,
    }
    first = _account_setup(session, options["account"], settings, setup)
    reads = {
        first: read_statements(data, timezone=first[0], currency=first[1], **options)
    }
    statements = []
    for index, statement in enumerate(reads[first]):
        stored = session.get(BankAccount, statement.account)
        if stored is not None:
            check_account_setup(stored, setup)
        setup_used = _account_setup(session, statement.account, settings, setup)
        if setup_used not in reads:
            reads[setup_used] = read_statements(
                data, timezone=setup_used[0], currency=setup_used[1], **options
            )
        statements.append(reads[setup_used][index])
    return statements


def _account_setup(
    session: Session, account: str | None, settings: Settings, setup: AccountSetup
) -> tuple[str, str]:
    """Return the (time zone, currency) an account's statements are read with."""
    stored = session.get(BankAccount, account) if account else None
    if stored is not None:
        return stored.time_zone, stored.currency
    return (
        setup.time_zone or settings.time_zone,
        setup.currency or settings.default_currency,
    )


def store_statements(
    session: Session,
    statements: list[ParsedStatement],
    settings: Settings,
    *,
    file_name: str,
    file_sha256: str,
    setup: AccountSetup = NO_SETUP,
    unique_line_refs: bool = True,
    actor: str = "system",
) -> ImportReport:
    """Store each statement as an import batch with its new lines.

    A line whose de-duplication key is already stored for its account is
    counted as already imported and not stored again. With
    `unique_line_refs`, a batch whose line_refs stored lines of the account
    already use stores its new lines with `@batch<id>` appended to each
    line_ref. Each batch gets an audit event listing its counts, skipped
    lines and notes; an unbalanced statement accepted on request gets one
    more. A new account gets the currency and time zone of `setup`.
    """
    report = ImportReport(file_name=file_name)
    for statement in statements:
        _store_one(
            session,
            statement,
            settings,
            report,
            file_sha256=file_sha256,
            setup=setup,
            unique_line_refs=unique_line_refs,
            actor=actor,
        )
    session.flush()
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
    *,
    file_sha256: str,
    setup: AccountSetup,
    unique_line_refs: bool,
    actor: str,
) -> None:
    records, notes = _fit_columns(statement)
    account = _ensure_account(session, statement, settings, setup)
    keys = dedupe_keys(statement, account=account.account)
    known = _known_keys(session, account.account, keys)
    batch = _add_batch(session, statement, account.account, file_sha256, actor)

    rows = [
        _line_row(
            record,
            key,
            account.account,
            batch.id,
            foreign=record.currency != account.currency,
        )
        for record, key in zip(records, keys, strict=True)
        if key not in known
    ]
    if unique_line_refs:
        notes += _distinct_line_refs(session, rows, account.account, batch.id)
    foreign = [row["line_ref"] for row in rows if row["anomaly_reasons"]]
    stored = _insert_lines(session, rows, batch.id)

    missed = [row["dedupe_key"] for row in rows if row["dedupe_key"] not in stored]
    if missed:
        # Another import stored these keys between our read and our insert.
        known.update(_known_keys(session, account.account, missed))
    earlier = Counter(known.get(key) for key in keys if key not in stored)

    batch.lines_new = len(stored)
    batch.lines_already_imported = len(keys) - len(stored)
    session.add(batch)
    _record(report, statement, batch, keys, stored, earlier, foreign, notes)
    _audit_batch(
        session, report.file_name, statement, batch, earlier, foreign, notes, actor
    )
    if foreign:
        log.warning(
            "batch %d: %d lines are not in %s, the currency of account "
            "%s; they are flagged %s",
            batch.id,
            len(foreign),
            account.currency,
            account.account,
            FOREIGN_CURRENCY,
        )


def _ensure_account(
    session: Session,
    statement: ParsedStatement,
    settings: Settings,
    setup: AccountSetup,
) -> BankAccount:
    name = statement.account or settings.default_account
    limit = BankAccount.__table__.c.account.type.length
    if len(name) > limit:
        raise ImportFormatError.at(
            statement.file_name,
            field="account",
            value=name,
            reason=f"the account is longer than {limit} characters; pass a "
            "shorter name for it",
        )
    stored = session.get(BankAccount, name)
    if stored is not None:
        check_account_setup(stored, setup)
        return stored

    # Two imports may see the account missing at once; the key lets one in.
    session.execute(
        _dialect_insert(session)(BankAccount.__table__)
        .values(
            account=name,
            currency=setup.currency or statement.currency or settings.default_currency,
            time_zone=setup.time_zone or settings.time_zone,
        )
        .on_conflict_do_nothing(index_elements=["account"])
    )
    stored = session.get(BankAccount, name)
    check_account_setup(stored, setup)
    return stored


def _distinct_line_refs(
    session: Session, rows: list[dict], account: str, batch_id: int
) -> list[str]:
    """Append `@batch<id>` to the rows' line_refs when stored lines use any.

    Every new line of the batch gets the suffix, not only the colliding
    ones, so the line_refs of one file keep one form. Returns a note for
    the report, or nothing when no line_ref collides.

    NOTE: two imports that run at the same time on PostgreSQL do not see
    each other's lines, so both may keep a line_ref such as `export.csv:1`.
    """
    colliding = _stored_line_refs(session, account, [row["line_ref"] for row in rows])
    if not colliding:
        return []

    suffix = f"@batch{batch_id}"
    limit = StatementLine.__table__.c.line_ref.type.length
    for row in rows:
        row["line_ref"] = row["line_ref"][: limit - len(suffix)] + suffix
    examples = ", ".join(sorted(colliding)[:3])
    more = f" and {len(colliding) - 3} more" if len(colliding) > 3 else ""
    note = (
        f"account {account} already has lines with line_ref {examples}{more}, so "
        f"batch {batch_id} stores its new lines with line_refs ending in {suffix}"
    )
    return [note]


def _stored_line_refs(session: Session, account: str, refs: list[str]) -> set[str]:
    """Return the line_refs of `refs` that stored lines of the account use."""
    colliding: set[str] = set()
    for start in range(0, len(refs), QUERY_CHUNK):
        query = select(StatementLine.line_ref).where(
            StatementLine.account == account,
            StatementLine.line_ref.in_(refs[start : start + QUERY_CHUNK]),
        )
        colliding.update(session.exec(query).all())
    return colliding


def _fit_columns(
    statement: ParsedStatement,
) -> tuple[list[StatementRecord], list[str]]:
    """Return the lines cut to the column widths, with a note per cut.

    Raises ImportFormatError naming each line whose identifier is too long.
    """
    table = StatementLine.__table__
    records, notes, problems = [], [], []
    for record in statement.lines:
        changes = {}
        for name in _FREE_TEXT:
            limit = table.c[name].type.length
            value = getattr(record, name)
            if len(value) > limit:
                changes[name] = value[:limit]
                notes.append(
                    f"line {record.line_ref}: the {name} was cut from "
                    f"{len(value)} to {limit} characters"
                )
        for name in _IDENTIFIERS:
            limit = table.c[name].type.length
            value = getattr(record, name)
            if len(value) > limit:
                problems.append(
                    Problem(
                        statement.file_name,
                        record.source_line,
                        name,
                        value,
                        f"longer than {limit} characters, the most that is stored; "
                        "correct the file",
                    )
                )
        records.append(dataclasses.replace(record, **changes) if changes else record)
    if problems:
        raise ImportFormatError(problems)
    return records, notes


def _known_keys(session: Session, account: str, keys: list[str]) -> dict[str, int]:
    """Return the batch id of each key already stored for the account."""
    known: dict[str, int] = {}
    for start in range(0, len(keys), QUERY_CHUNK):
        chunk = keys[start : start + QUERY_CHUNK]
        query = select(StatementLine.dedupe_key, StatementLine.batch_id).where(
            StatementLine.account == account, StatementLine.dedupe_key.in_(chunk)
        )
        known.update(dict(session.exec(query).all()))
    return known


def _add_batch(
    session: Session,
    statement: ParsedStatement,
    account: str,
    file_sha256: str,
    actor: str,
) -> ImportBatch:
    batch = ImportBatch(
        file_name=statement.file_name[:500],
        file_sha256=file_sha256,
        format=statement.format,
        account=account,
        statement_id=statement.statement_id[:128] if statement.statement_id else None,
        opening_balance=statement.opening_balance,
        closing_balance=statement.closing_balance,
        closing_date=statement.closing_date,
        lines_total=len(statement.lines) + len(statement.skipped),
        lines_rejected=len(statement.skipped),
        actor=actor,
    )
    session.add(batch)
    session.flush()
    return batch


def _line_row(
    record: StatementRecord, key: str, account: str, batch_id: int, *, foreign: bool
) -> dict:
    return {
        "account": account,
        "line_ref": record.line_ref,
        "dedupe_key": key,
        "booking_date": record.booking_date,
        "value_date": record.value_date,
        "amount": record.amount,
        "currency": record.currency,
        "counterparty_name": record.counterparty_name,
        "counterparty_account": record.counterparty_account,
        "memo": record.memo,
        "bank_reference": record.bank_reference,
        "channel": record.channel,
        "transaction_type": record.transaction_type,
        "is_reversal": record.is_reversal,
        "unknown_type": record.unknown_type,
        "batch_id": batch_id,
        "source_line": record.source_line,
        "status": "new",
        # Matching keeps these reasons and sends such a line to review.
        "anomaly_reasons": [FOREIGN_CURRENCY] if foreign else None,
        "version": 1,
        "created_at": utcnow(),
    }


def _insert_lines(session: Session, rows: list[dict], batch_id: int) -> dict[str, int]:
    """Insert the rows the unique key lets in, and return their ids by key.

    The ids are read back by batch id instead of with RETURNING. With
    psycopg 3.3, a many-row INSERT ... RETURNING spent most of its time
    converting placeholders: 10,000 lines took about 10 s against about 1 s
    this way (measured with `cashmatch import` on a 2-core machine).
    """
    table = StatementLine.__table__
    statement = _dialect_insert(session)(table).on_conflict_do_nothing(
        index_elements=["account", "dedupe_key"]
    )
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        session.execute(statement, chunk)
        log.debug(
            "batch %d: wrote lines %d-%d of %d",
            batch_id,
            start + 1,
            start + len(chunk),
            len(rows),
        )
    query = select(StatementLine.dedupe_key, StatementLine.id).where(
        StatementLine.batch_id == batch_id
    )
    return dict(session.exec(query).all())


def _dialect_insert(session: Session):
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise ValueError(f"database {name} is not supported; use SQLite or PostgreSQL")
    return insert


def _record(
    report: ImportReport,
    statement: ParsedStatement,
    batch: ImportBatch,
    keys: list[str],
    stored: dict[str, int],
    earlier: Counter,
    foreign: list[str],
    notes: list[str],
) -> None:
    report.batch_ids.append(batch.id)
    report.line_keys += [(batch.account, key) for key in keys]
    report.line_ids += [stored[key] for key in keys if key in stored]
    report.lines_total += batch.lines_total
    report.lines_new += batch.lines_new
    report.lines_already_imported += batch.lines_already_imported
    report.already_imported_by.update(earlier)
    report.skipped += statement.skipped
    report.foreign_currency += foreign
    if statement.balance_difference is not None:
        report.balance_differences[batch.id] = statement.balance_difference
    report.notes += statement.notes + notes


def _audit_batch(
    session: Session,
    file_name: str,
    statement: ParsedStatement,
    batch: ImportBatch,
    earlier: Counter,
    foreign: list[str],
    notes: list[str],
    actor: str,
) -> None:
    detail = {
        "file": file_name,
        "file_sha256": batch.file_sha256,
        "format": statement.format,
        "profile": statement.profile,
        "encoding": statement.encoding,
        "account": batch.account,
        "statement_id": statement.statement_id,
        "lines_total": batch.lines_total,
        "new": batch.lines_new,
        "already_imported": batch.lines_already_imported,
        "already_imported_by": {str(k): n for k, n in earlier.items()},
        "rejected": batch.lines_rejected,
        "skipped": [_problem_view(problem) for problem in statement.skipped],
        FOREIGN_CURRENCY: foreign,
        "notes": statement.notes + notes,
    }
    session.add(
        AuditEvent(
            actor=actor,
            action="import",
            entity="import_batch",
            entity_id=str(batch.id),
            detail=detail,
        )
    )
    if statement.balance_difference is None:
        return

    session.add(
        AuditEvent(
            actor=actor,
            action="accept_unbalanced",
            entity="import_batch",
            entity_id=str(batch.id),
            detail={
                "file": file_name,
                "statement_id": statement.statement_id,
                "opening_balance": str(statement.opening_balance),
                "closing_balance": str(statement.closing_balance),
                "lines_total": str(statement.total),
                "difference": str(statement.balance_difference),
            },
        )
    )


def _problem_view(problem: Problem) -> dict:
    return {
        "line": problem.line,
        "field": problem.field,
        "value": problem.value,
        "reason": problem.reason,
    }


def lines_for_keys(
    session: Session, keys: list[tuple[str, str]]
) -> list[StatementLine]:
    """Return the stored lines with these (account, key) pairs, in that order."""
    found: dict[tuple[str, str], StatementLine] = {}
    accounts = {account for account, _ in keys}
    for account in accounts:
        wanted = [key for acct, key in keys if acct == account]
        for start in range(0, len(wanted), QUERY_CHUNK):
            query = select(StatementLine).where(
                StatementLine.account == account,
                StatementLine.dedupe_key.in_(wanted[start : start + QUERY_CHUNK]),
            )
            for line in session.exec(query).all():
                found[(account, line.dedupe_key)] = line
    return [found[key] for key in keys]
