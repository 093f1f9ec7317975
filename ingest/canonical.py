"""The canonical statement CSV, the format every other part can rely on.

Columns: line_ref, booking_date, amount, currency, counterparty_name,
counterparty_account, memo, bank_reference, in any order; optional
value_date, channel and transaction_type. Dates are YYYY-MM-DD and amounts
use a decimal point, with a minus sign for money out.
"""

from __future__ import annotations

from datetime import date

from ingest.problems import ProblemList
from ingest.records import CHANNELS, ParsedStatement, StatementRecord
from ingest.tabular import DELIMITERS, Row, csv_rows
from ingest.values import DOT, ValueProblem, parse_amount

FORMAT = "csv"
REQUIRED = ("line_ref", "booking_date", "amount")


def find_header(text: str) -> tuple[str, list[Row]] | None:
    """Return the delimiter and rows when `text` is a canonical CSV."""
    for delimiter in DELIMITERS:
        rows = csv_rows(text, delimiter)
        first = next((row for row in rows if not row.is_blank()), None)
        if first is None:
            continue
        names = [cell.strip().lower() for cell in first.cells]
        if all(name in names for name in REQUIRED):
            return delimiter, rows
    return None


def read_canonical(
    rows: list[Row],
    *,
    file_name: str,
    problems: ProblemList,
    currency: str,
) -> ParsedStatement:
    """Read the rows of a canonical CSV into one statement."""
    header = next(row for row in rows if not row.is_blank())
    columns = {name.strip().lower(): i for i, name in enumerate(header.cells)}
    lines = []
    for row in rows:
        if row.number <= header.number or row.is_blank():
            continue
        line = _read_row(row, columns, problems, currency)
        if line is not None:
            lines.append(line)
    return ParsedStatement(file_name=file_name, format=FORMAT, lines=lines)


def _read_row(
    row: Row, columns: dict[str, int], problems: ProblemList, currency: str
) -> StatementRecord | None:
    def cell(name: str) -> str:
        return row.cell(columns[name]) if name in columns else ""

    before = len(problems.line_problems)
    booking_date = _date(row, "booking_date", cell("booking_date"), problems)
    value_text = cell("value_date")
    value_date = _date(row, "value_date", value_text, problems) if value_text else None
    amount = None
    try:
        amount = parse_amount(cell("amount"), DOT)
    except ValueProblem:
        problems.line(row.number, "amount", cell("amount"),
                      "not an amount; write it with a decimal point and a "
                      "minus sign for money out, such as -12.50")
    channel = cell("channel").lower() or "transfer"
    if channel not in CHANNELS:
        problems.line(row.number, "channel", channel,
                      f"unknown channel; use one of {', '.join(CHANNELS)}")
    line_currency = (cell("currency") or currency).upper()
    if len(line_currency) != 3 or not line_currency.isalpha():
        problems.line(row.number, "currency", line_currency,
                      "not a currency code; use three letters such as CNY")
    if len(problems.line_problems) > before:
        return None

    return StatementRecord(
        line_ref=cell("line_ref"),
        booking_date=booking_date,
        amount=amount,
        currency=line_currency,
        counterparty_name=cell("counterparty_name"),
        counterparty_account=cell("counterparty_account"),
        memo=cell("memo"),
        bank_reference=cell("bank_reference"),
        value_date=value_date,
        channel=channel,
        transaction_type=cell("transaction_type"),
        source_line=row.number,
        bank_id=cell("bank_reference"),
    )


def _date(row: Row, field: str, text: str, problems: ProblemList) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        problems.line(row.number, field, text,
                      "not a date; write dates as YYYY-MM-DD, such as 2025-03-28")
        return None
