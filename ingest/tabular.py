"""Rows of CSV, XLS and XLSX files as lists of cleaned text cells."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

DELIMITERS = (",", ";", "\t", "|")

# Spaces, tabs and the ideographic space pad cells in Chinese exports, and a
# trailing tab is the usual trick to keep Excel from rounding long ids.
_PADDING = " \t\r\n\u3000\u00a0"


@dataclass(frozen=True)
class Row:
    """One row of a table: its number in the file (from 1) and its cells."""

    number: int
    cells: list[str]

    def cell(self, index: int) -> str:
        """Return the cell at `index`, or "" past the end of a short row."""
        return self.cells[index] if 0 <= index < len(self.cells) else ""

    def is_blank(self) -> bool:
        """Tell whether every cell is empty."""
        return not any(self.cells)


def clean_cell(value: object) -> str:
    """Return a cell as trimmed text, without Excel's `="..."` wrapper."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # repr gives the shortest text that reads back as the same double,
        # which is the decimal the spreadsheet author typed.
        return str(Decimal(repr(value)))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip(_PADDING)
    if text.startswith('="') and text.endswith('"'):
        text = text[2:-1].strip(_PADDING)
    return text


def csv_rows(text: str, delimiter: str) -> list[Row]:
    """Split CSV text into rows with `delimiter`, numbering physical lines."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    start = 1
    try:
        for cells in reader:
            rows.append(Row(start, [clean_cell(cell) for cell in cells]))
            start = reader.line_num + 1
    except csv.Error:
        # An unterminated quote swallows the rest of the file. The rows read
        # so far still let format detection decide, and a marker row lets
        # the reader that claims the file report the broken row.
        rows.append(Row(start, ["\x00csv-error"]))
    return rows


def xls_sheets(data: bytes) -> list[tuple[str, list[Row]]]:
    """Read every sheet of a BIFF .xls workbook into rows."""
    import xlrd

    book = xlrd.open_workbook(file_contents=data, on_demand=True)
    sheets = []
    for sheet in book.sheets():
        rows = []
        for index in range(sheet.nrows):
            cells = [_xls_cell(cell, book.datemode) for cell in sheet.row(index)]
            rows.append(Row(index + 1, _trim(cells)))
        sheets.append((sheet.name, rows))
    return sheets


def _xls_cell(cell, datemode: int) -> str:
    import xlrd

    if cell.ctype == xlrd.XL_CELL_DATE:
        moment = xlrd.xldate_as_datetime(cell.value, datemode)
        if moment.time() == datetime.min.time():
            return moment.date().isoformat()
        return moment.isoformat(sep=" ")
    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return ""
    if cell.ctype == xlrd.XL_CELL_ERROR:
        return ""
    return clean_cell(cell.value)


def xlsx_sheets(data: bytes) -> list[tuple[str, list[Row]]]:
    """Read every sheet of an .xlsx workbook into rows, values not formulas."""
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheets = []
        for sheet in book.worksheets:
            rows = []
            for index, values in enumerate(sheet.iter_rows(values_only=True)):
                rows.append(Row(index + 1, _trim([clean_cell(v) for v in values])))
            sheets.append((sheet.title, rows))
        return sheets
    finally:
        book.close()


def _trim(cells: list[str]) -> list[str]:
    while cells and not cells[-1]:
        cells.pop()
    return cells
