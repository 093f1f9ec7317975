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


def check_balances(statements: list[ParsedStatement], file_name: str, *,
                   accept_unbalanced: bool = False) -> None:
    """Raise StatementBalanceError when a statement's lines miss its balances.

    Statements without both an opening and a closing balance are not
    checked. A statement with skipped lines cannot reproduce its balance,
    so it gets a note instead of a check. With `accept_unbalanced`, a
    statement that misses its balances is kept: its `balance_difference`
    is the closing balance less what the lines give, and a note records it.
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
        if expected == closing:
            continue
        if accept_unbalanced:
            _accept(file_name, index, statement, expected)
        else:
            problems.append(_balance_problem(file_name, index, statement, expected))
    if problems:
        raise StatementBalanceError(problems)


def _mismatch(index: int, statement: ParsedStatement, expected: Decimal) -> str:
    name = statement.statement_id or str(index)
    return (
        f"statement {name}: opening balance {statement.opening_balance} plus "
        f"{len(statement.lines)} lines ({statement.total}) is {expected}, but "
        f"the closing balance is {statement.closing_balance}"
    )


def _accept(file_name: str, index: int, statement: ParsedStatement,
            expected: Decimal) -> None:
    difference = statement.closing_balance - expected
    statement.balance_difference = difference
    statement.notes.append(
        f"{_mismatch(index, statement, expected)}; imported anyway because "
        f"unbalanced statements were accepted (difference {difference})"
    )
    log.warning("%s: accepted unbalanced statement %s, difference %s",
                file_name, statement.statement_id or index, difference)


def _balance_problem(
    file_name: str, index: int, statement: ParsedStatement, expected: Decimal
) -> Problem:
    reason = (
        f"{_mismatch(index, statement, expected)}; the file is incomplete or "
        "altered, so request a complete statement from the bank, or accept "
        "unbalanced statements to import its lines and record the difference"
    )
    return Problem(file_name, None, "closing_balance",
                   str(statement.closing_balance), reason)
