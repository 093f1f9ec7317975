"""The allocations output and other tables, as CSV or XLSX.

Memos and names come from payers, so a text cell that a spreadsheet would
run as a formula (starting with =, +, -, @, a tab, a carriage return or a
line feed) is written with a leading apostrophe in CSV and as a text cell in
XLSX. Amounts stay numbers.

CSV rows end in CRLF, as RFC 4180 specifies. The csv module quotes a cell that
contains a character of the line terminator, so every cell with a carriage
return or a line feed is quoted and a reader cannot start a new row inside it.
A CSV file starts with the UTF-8 byte order mark, as the API's CSV exports
do, because Excel reads a CSV file without it in the system's code page and
garbles Chinese names.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from models.errors import CashmatchError

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
# The exports of stored lines add whether each allocation is `proposed` (its
# line is still in review) or `confirmed`, and our bank account. A line
# without allocations has an empty `allocation_status`.
STORED_ALLOCATION_COLUMNS = (*ALLOCATION_COLUMNS, "allocation_status", "account")
NUMERIC_COLUMNS = frozenset({"amount", "confidence", "anomaly_score"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
TABLE_SUFFIXES = (".csv", ".xlsx")
CSV_LINE_TERMINATOR = "\r\n"
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
    """Write rows as UTF-8 CSV with a header; return the number of rows.

    A file `target` starts with the byte order mark. A text stream gets
    none, because it may be a terminal or the middle of a response.
    """
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="", encoding="utf-8-sig") as handle:
            return write_csv(rows, columns, handle)
    writer = csv.writer(target, lineterminator=CSV_LINE_TERMINATOR)
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


class UnsupportedTableFormat(CashmatchError):
    """An output file whose suffix names no table format Cashmatch writes."""


def check_table_suffix(path: Path) -> None:
    """Raise UnsupportedTableFormat unless `path` ends in .csv or .xlsx."""
    if path.suffix.lower() in TABLE_SUFFIXES:
        return

    suffix = repr(path.suffix) if path.suffix else "no suffix"
    raise UnsupportedTableFormat(
        f"cannot write {path}: {suffix} is not one of {', '.join(TABLE_SUFFIXES)}; "
        "name the file like report.csv or report.xlsx"
    )


def write_table(
    rows: Iterable[dict], columns: Sequence[str], path: Path, *, title: str
) -> int:
    """Write rows as CSV or XLSX, chosen by the suffix of `path`.

    Returns the number of rows. Raises UnsupportedTableFormat for any suffix
    other than .csv and .xlsx, before anything is written.
    """
    check_table_suffix(path)
    if path.suffix.lower() == ".csv":
        return write_csv(rows, columns, path)

    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(xlsx_bytes(rows, columns, title=title))
    return len(rows)


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
