"""Steps every reader shares: line references and the balance check."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from decimal import Decimal

from ingest.records import ParsedStatement, StatementRecord
from models.errors import Problem, StatementBalanceError

log = logging.getLogger("cashmatch.ingest")

MISSING_IDS = {"", "NONREF", "NOTPROVIDED", "NONE", "/", "-"}


def clean_bank_id(value: str | None) -> str:
    """Return the bank's id, or "" when it is missing or a placeholder."""
    text = (value or "").strip().strip("\t").strip()
    return "" if text.upper() in MISSING_IDS else text


def assign_line_refs(statements: list[ParsedStatement], file_name: str) -> None:
    """Give every line of a file its line_ref, in place.

    A line with a bank id takes that id, with `#2`, `#3` for later lines of
    the same statement sharing it. A line without one takes the file name
    and its position among the file's lines, counted from 1.
    """
    position = 0
    for statement in statements:
        seen: Counter[str] = Counter()
        lines = []
        for line in statement.lines:
            position += 1
            lines.append(_with_ref(line, file_name, position, seen))
        statement.lines = lines


def _with_ref(
    line: StatementRecord, file_name: str, position: int, seen: Counter[str]
) -> StatementRecord:
    base = line.line_ref or line.bank_id
    if not base:
        return dataclasses.replace(line, line_ref=f"{file_name}:{position}")
    seen[base] += 1
    ref = base if seen[base] == 1 else f"{base}#{seen[base]}"
    return dataclasses.replace(line, line_ref=ref)


def check_balances(statements: list[ParsedStatement], file_name: str) -> None:
    """Raise StatementBalanceError when a statement's lines miss its balances.

    Statements without both an opening and a closing balance are not
    checked. A statement with skipped lines cannot reproduce its balance,
    so it gets a note instead of a check.
    """
    problems = []
    for index, statement in enumerate(statements, start=1):
        opening, closing = statement.opening_balance, statement.closing_balance
        if opening is None or closing is None:
            continue
        if statement.skipped:
            statement.notes.append(
                "balances not checked because lines were skipped"
            )
            continue
        expected = opening + statement.total
        if expected != closing:
            problems.append(_balance_problem(file_name, index, statement, expected))
    if problems:
        raise StatementBalanceError(problems)


def _balance_problem(
    file_name: str, index: int, statement: ParsedStatement, expected: Decimal
) -> Problem:
    name = statement.statement_id or f"statement {index}"
    reason = (
        f"statement {name}: opening balance {statement.opening_balance} plus "
        f"{len(statement.lines)} lines ({statement.total}) is {expected}, but "
        f"the closing balance is {statement.closing_balance}; the file is "
        "incomplete or altered, so request a complete statement from the bank"
    )
    return Problem(file_name, None, "closing_balance",
                   str(statement.closing_balance), reason)
