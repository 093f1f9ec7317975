"""CSV, XLS and XLSX statements: the canonical CSV and bank profiles.

The canonical CSV is tried first. Otherwise each profile, specific ones
first, looks for its header row among the first rows of the file, or for a
positional profile, checks that the first rows have its layout. The first
profile that fits reads the table.
"""

from __future__ import annotations

import logging
import re

from ingest.canonical import find_header, read_canonical
from ingest.context import ReadContext
from ingest.encoding import Decoded, decode_bytes
from ingest.profiles import Profile, get_profile, list_profiles, load_profiles
from ingest.records import ParsedStatement
from ingest.table_rows import read_profile_table
from ingest.tabular import Row, csv_rows, xls_sheets, xlsx_sheets

log = logging.getLogger("cashmatch.ingest")

__all__ = ["list_profiles", "read_text_table", "read_xls", "read_xlsx"]

_FALLBACKS = ("gb18030", "cp1252")


def read_text_table(data: bytes, context: ReadContext) -> list[ParsedStatement]:
    """Read a CSV file: the canonical layout or a bank profile's layout."""
    decoded = _decode(data, context)
    if decoded is None:
        return []
    text = decoded.text.lstrip("\ufeff")

    if context.profile is None:
        canonical = find_header(text)
        if canonical is not None:
            statement = read_canonical(canonical[1], file_name=context.file_name,
                                       problems=context.problems,
                                       currency=context.currency)
            return [_stamp(statement, decoded, None)]

    cache: dict[str, list[Row]] = {}

    def tables(profile: Profile):
        for delimiter in profile.delimiters:
            if delimiter not in cache:
                cache[delimiter] = csv_rows(text, delimiter)
            yield "csv", cache[delimiter], delimiter

    return _read_with_profiles(tables, context, decoded, _first_line(text))


def read_xls(data: bytes, context: ReadContext) -> list[ParsedStatement]:
    """Read a BIFF .xls workbook with a bank profile."""
    sheets = _open_book(xls_sheets, data, context, "XLS")
    if sheets is None:
        return []
    return _read_with_profiles(lambda _p: (("xls", rows, None) for _n, rows in sheets),
                               context, None, _first_row(sheets))


def read_xlsx(data: bytes, context: ReadContext) -> list[ParsedStatement]:
    """Read an .xlsx workbook with a bank profile."""
    sheets = _open_book(xlsx_sheets, data, context, "XLSX")
    if sheets is None:
        return []
    return _read_with_profiles(lambda _p: (("xlsx", rows, None) for _n, rows in sheets),
                               context, None, _first_row(sheets))


def _decode(data: bytes, context: ReadContext) -> Decoded | None:
    profile = get_profile(context.profile) if context.profile else None
    fallbacks = profile.encodings if profile else _FALLBACKS
    return decode_bytes(data, file_name=context.file_name,
                        fallbacks=tuple(dict.fromkeys(fallbacks + _FALLBACKS)))


def _open_book(opener, data: bytes, context: ReadContext, kind: str):
    try:
        return opener(data)
    except Exception as exc:  # xlrd and openpyxl raise many error types
        context.problems.file(
            f"the {kind} workbook cannot be opened ({type(exc).__name__}: {exc}); "
            "open it in a spreadsheet program and save it again"
        )
        return None


def _read_with_profiles(tables, context: ReadContext, decoded: Decoded | None,
                        first: str) -> list[ParsedStatement]:
    profiles = _candidate_profiles(context)
    if profiles is None:
        return []
    for profile in profiles:
        for kind, rows, delimiter in tables(profile):
            if profile.positional:
                if not profile.fits_layout(rows):
                    continue
                header = None
            else:
                header = _find_header(profile, rows)
                if header is None:
                    continue
            statements = read_profile_table(profile, rows, header, context,
                                            delimiter=delimiter)
            for statement in statements:
                statement.format = kind
            return [_stamp(statement, decoded, profile) for statement in statements]

    context.problems.file(
        "no known statement layout matches this file: it is not MT940, camt, "
        "OFX or the canonical CSV, no bank profile finds its header row and "
        "no positional profile fits its rows; pass the profile that fits or "
        "add one for this bank",
        line=1, field="header", value=first,
    )
    return []


def _candidate_profiles(context: ReadContext) -> list[Profile] | None:
    if context.profile is None:
        return list(load_profiles())
    profile = get_profile(context.profile)
    if profile is None:
        context.problems.file(
            f"unknown profile; use one of {', '.join(list_profiles())}",
            field="profile", value=context.profile,
        )
        return None
    return [profile]


def _find_header(profile: Profile, rows: list[Row]) -> Row | None:
    for row in rows[: profile.header_rows]:
        if row.cells and profile.matches(row.cells):
            return row
    return None


def _stamp(statement: ParsedStatement, decoded: Decoded | None,
           profile: Profile | None) -> ParsedStatement:
    if decoded is not None:
        statement.encoding = decoded.encoding
        statement.notes = list(decoded.notes) + statement.notes
    statement.profile = profile.name if profile else None
    return statement


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return re.sub(r"\s+", " ", line.strip())[:120]
    return ""


def _first_row(sheets) -> str:
    for _name, rows in sheets:
        for row in rows:
            if not row.is_blank():
                return " | ".join(cell for cell in row.cells if cell)[:120]
    return ""
