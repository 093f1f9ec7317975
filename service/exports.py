"""The allocations output and other tables, as CSV or XLSX.

Memos and names come from payers, so a text cell that a spreadsheet would
run as a formula (starting with =, +, -, @, a tab or a carriage return) is
written with a leading apostrophe in CSV and as a text cell in XLSX. Amounts
stay numbers.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

ALLOCATION_COLUMNS = (
    "line_ref",
    "customer_id",
    "order_id",
    "target",
    "amount",
    "confidence",
    "decision",
    "anomaly_score",
    "anomaly_reasons",
)
NUMERIC_COLUMNS = frozenset({"amount", "confidence", "anomaly_score"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Control characters other than tab, line feed and carriage return.
XML_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralise(text: str) -> str:
    """Return text that a spreadsheet shows as text, never runs as a formula."""
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_cell(column: str, value) -> str:
    """Format one cell: numbers as plain numbers, text neutralised."""
    if value is None:
        return ""
    if column in NUMERIC_COLUMNS or isinstance(value, (Decimal, int, float)):
        return format_number(value)
    return neutralise(str(value))


def format_number(value) -> str:
    """Format a Decimal with its places and a float with up to four."""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def write_csv(
    rows: Iterable[dict], columns: Sequence[str], target: Path | io.TextIOBase
) -> int:
    """Write rows as UTF-8 CSV with a header; return the number of rows."""
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="", encoding="utf-8") as handle:
            return write_csv(rows, columns, handle)
    writer = csv.writer(target, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([csv_cell(column, row.get(column)) for column in columns])
        count += 1
    return count


def csv_text(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """Return rows as CSV text."""
    buffer = io.StringIO()
    write_csv(rows, columns, buffer)
    return buffer.getvalue()


def xlsx_bytes(rows: Iterable[dict], columns: Sequence[str], *, title: str) -> bytes:
    """Return rows as an XLSX workbook; text cells are stored as text."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title[:31]
    sheet.append(list(columns))
    for row in rows:
        sheet.append([_xlsx_value(row.get(column)) for column in columns])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _xlsx_value(value):
    if value is None or isinstance(value, (Decimal, int, float)):
        return value
    return XML_CONTROL_CHARACTERS.sub(_escape_control, str(value))


def _escape_control(match: re.Match) -> str:
    # XLSX is XML, which cannot hold these characters. A memo that carries
    # one shows it as the text \x1b, so the cell keeps every character.
    return f"\\x{ord(match.group()):02x}"
