"""Reading statement files of any supported format into statements."""

from __future__ import annotations

import logging
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingest import detect
from ingest.assemble import assign_line_refs, check_balances
from ingest.context import DEFAULT_CURRENCY, DEFAULT_TIMEZONE, ReadContext
from ingest.records import ParsedStatement
from models.errors import ImportFormatError

log = logging.getLogger("cashmatch.ingest")

DEFAULT_ACCOUNT = "default"


def read_statements(
    source: Path | bytes,
    *,
    file_name: str | None = None,
    account: str | None = None,
    profile: str | None = None,
    skip_bad_lines: bool = False,
    accept_unbalanced: bool = False,
    timezone: str = DEFAULT_TIMEZONE,
    currency: str = DEFAULT_CURRENCY,
) -> list[ParsedStatement]:
    """Read a statement file into one ParsedStatement per statement in it.

    The format is found from the content, not the extension. `profile`
    names the bank profile of a CSV or Excel export when detection should
    not choose. The account is the one the file names, else `account`, else
    "default". Dates are calendar dates in `timezone`, and `currency` is
    used where the file names none.

    Raises ImportFormatError listing every problem of the file, or
    StatementBalanceError when a statement's lines do not reproduce its
    balances; nothing is returned then. With `skip_bad_lines`, lines that
    cannot be read are left out and listed in each statement's `skipped`.
    With `accept_unbalanced`, a statement whose lines miss its balances is
    returned with a note and its `balance_difference` instead.
    """
    data, name = _load(source, file_name)
    context = ReadContext(
        file_name=name,
        account=account,
        profile=profile,
        timezone=_zone(timezone, name),
        currency=currency.upper(),
    )
    if not data.strip():
        raise ImportFormatError.at(name, reason="the file is empty")

    kind = detect.detect_format(data)
    statements = _read(kind, data, context)
    if profile and kind not in detect.TABLES:
        for statement in statements:
            statement.notes.append(
                f"profile {profile} was not used: the file is {kind}, which "
                "needs no profile")
    context.problems.raise_if_any(skip_bad_lines=skip_bad_lines)
    _attach_skipped(statements, context)
    _finish(statements, context, accept_unbalanced)
    log.info(
        "read %s as %s: %d statements, %d lines, %d skipped",
        name,
        statements[0].format if statements else kind,
        len(statements),
        sum(len(s.lines) for s in statements),
        sum(len(s.skipped) for s in statements),
    )
    return statements


def _load(source: Path | bytes, file_name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), file_name or "statement"
    path = Path(source)
    try:
        return path.read_bytes(), file_name or path.name
    except OSError as exc:
        raise ImportFormatError.at(
            file_name or str(path),
            reason=f"the file cannot be read ({exc.strerror}); check the path",
        ) from exc


def _zone(name: str, file_name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # A folder of the zone database, such as Europe, raises
        # IsADirectoryError.
        raise ImportFormatError.at(
            file_name, field="timezone", value=name,
            reason="unknown time zone; use an IANA name such as Asia/Shanghai",
        ) from exc


def _read(kind: str, data: bytes, context: ReadContext) -> list[ParsedStatement]:
    reader = _readers()[kind]
    try:
        return reader(data, context)
    except ImportFormatError:
        raise
    except Exception as exc:
        # Readers turn every expected fault into a problem. This handler
        # catches the unexpected rest, so a bad file raises ImportFormatError
        # and nothing else; the fuzz tests check that it is never reached.
        log.warning("reading %s as %s failed", context.file_name, kind,
                    exc_info=True)
        raise ImportFormatError.at(
            context.file_name,
            reason=(f"the file looks like {kind} but cannot be read "
                    f"({type(exc).__name__}: {exc}); check that it is complete"),
        ) from exc


def _readers():
    from ingest.camt import read_camt, read_camt_zip
    from ingest.ofx import read_ofx
    from ingest.swift import read_mt940
    from ingest.tables import read_text_table, read_xls, read_xlsx

    return {
        detect.MT940: read_mt940,
        detect.CAMT: read_camt,
        detect.CAMT_ZIP: read_camt_zip,
        detect.OFX: read_ofx,
        detect.XLS: read_xls,
        detect.XLSX: read_xlsx,
        detect.TEXT_TABLE: read_text_table,
    }


def _attach_skipped(statements: list[ParsedStatement], context: ReadContext) -> None:
    problems = context.problems
    if not problems.line_problems:
        return
    if not statements:
        raise ImportFormatError(problems.line_problems)
    for problem, index in zip(problems.line_problems, problems.line_statements,
                              strict=True):
        statements[min(index, len(statements) - 1)].skipped.append(problem)
    log.warning("%s: skipped %d lines that cannot be read",
                context.file_name, len(problems.line_problems))


def _finish(statements: list[ParsedStatement], context: ReadContext,
            accept_unbalanced: bool) -> None:
    for statement in statements:
        statement.account = statement.account or context.account or DEFAULT_ACCOUNT
        if statement.currency is None:
            currencies = {line.currency for line in statement.lines}
            statement.currency = (
                currencies.pop() if len(currencies) == 1 else context.currency
            )
    assign_line_refs(statements, context.file_name)
    check_balances(statements, context.file_name,
                   accept_unbalanced=accept_unbalanced)
