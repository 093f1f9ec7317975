"""Amounts and dates as written in statement files.

A file has one number format and one date order. Both are decided for the
whole file, from the profile or from the rows that only one reading fits,
and never row by row, so `01/02/2025` cannot mean two different days in
one file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

CENT = Decimal("0.01")

# Symbols and codes that banks write next to amounts.
_CURRENCY_MARKS = re.compile(
    r"(?i)^(?:cny|rmb|hkd|usd|eur|chf|gbp|jpy|aud|cad)\s*|"
    r"\s*(?:cny|rmb|hkd|usd|eur|chf|gbp|jpy|aud|cad|元)$|[¥￥$€£]"
)
_SPACES = re.compile(r"[\s\u00a0\u202f\u3000']+")
_DOT_NUMBER = re.compile(r"^(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?$|^\.\d+$")
_COMMA_NUMBER = re.compile(r"^(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d*)?$|^,\d+$")
_TIME = re.compile(r"^\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?$")

DOT = "."
COMMA = ","

DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%Y%m%d",
    "%Y年%m月%d日",
    "%d.%m.%Y",
    "%d.%m.%y",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%d/%m/%y",
    "%m/%d/%y",
)


class ValueProblem(ValueError):
    """A cell that cannot be read as the value its column holds."""


@dataclass(frozen=True)
class SignedText:
    """An amount cell split into its sign and its unsigned digits."""

    negative: bool
    digits: str


def split_sign(text: str) -> SignedText:
    """Remove currency marks, spaces and the sign from an amount cell."""
    value = _SPACES.sub("", text.strip().strip("\t"))
    value = _CURRENCY_MARKS.sub("", value)
    negative = False
    if len(value) > 1 and value.startswith("(") and value.endswith(")"):
        negative, value = True, value[1:-1]
    value = _CURRENCY_MARKS.sub("", value)
    if value[:1] and value[0] in "+-":
        negative, value = value[0] == "-", value[1:]
    elif value[-1:] and value[-1] in "+-":
        negative, value = value[-1] == "-", value[:-1]
    # The sign may stand before the currency symbol, as in -$7,971.39.
    value = _CURRENCY_MARKS.sub("", value)
    if value[:1] and value[0] in "+-":
        negative, value = value[0] == "-", value[1:]
    return SignedText(negative, value)


def classify_number(text: str) -> str | None:
    """Return DOT or COMMA when only one number format reads `text`.

    Returns None when both read it the same or differently without a way to
    tell (`1,250` or `-7.000`), and raises ValueProblem when neither does.
    """
    digits = split_sign(text).digits
    dot_ok = bool(_DOT_NUMBER.match(digits))
    comma_ok = bool(_COMMA_NUMBER.match(digits))
    if not dot_ok and not comma_ok:
        raise ValueProblem(f"not an amount: {text!r}")
    if dot_ok and comma_ok:
        return None
    return DOT if dot_ok else COMMA


def decide_number_format(
    cells: Iterable[tuple[int, str]], *, default: str = DOT
) -> tuple[str, str | None]:
    """Decide the decimal separator of a file from its amount cells.

    `cells` are (row number, text) pairs. Returns the separator and a note
    when no row decided it. Raises ValueProblem when rows disagree.
    """
    seen: dict[str, int] = {}
    for row, text in cells:
        try:
            kind = classify_number(text)
        except ValueProblem:
            continue
        if kind is not None and kind not in seen:
            seen[kind] = row
    if len(seen) == 2:
        raise ValueProblem(
            f"row {seen[DOT]} writes amounts with a decimal point and row "
            f"{seen[COMMA]} with a decimal comma; one file must use one format"
        )
    if seen:
        return next(iter(seen)), None
    name = "decimal point" if default == DOT else "decimal comma"
    return default, f"no amount decides the number format; read with a {name}"


def parse_amount(text: str, decimal_separator: str = DOT) -> Decimal:
    """Read an amount cell written with the given decimal separator.

    Returns a two-place Decimal. Raises ValueProblem for text that is not
    an amount or has non-zero digits beyond the cents.
    """
    signed = split_sign(text)
    digits = signed.digits
    pattern = _DOT_NUMBER if decimal_separator == DOT else _COMMA_NUMBER
    if not digits or not pattern.match(digits):
        raise ValueProblem(f"not an amount: {text!r}")
    thousands = "," if decimal_separator == DOT else "."
    plain = digits.replace(thousands, "").replace(decimal_separator, ".")
    return to_cents_decimal(plain, negative=signed.negative, shown=text)


def to_cents_decimal(plain: str, *, negative: bool = False, shown: str = "") -> Decimal:
    """Return `plain` as a two-place Decimal; more non-zero places fail."""
    try:
        amount = Decimal(plain.rstrip(".") or "0")
    except InvalidOperation as exc:
        raise ValueProblem(f"not an amount: {shown or plain!r}") from exc
    if not amount.is_finite():
        raise ValueProblem(f"not a finite amount: {shown or plain!r}")
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if rounded != amount:
        raise ValueProblem(
            f"amount {shown or plain!r} has non-zero digits beyond the cents"
        )
    return -rounded if negative else rounded


def date_part(text: str) -> str:
    """Return the date of a date-and-time cell, without the time."""
    value = " ".join(text.replace("\t", " ").split())
    if "T" in value and value[:4].isdigit():
        value = value.split("T", 1)[0]
    parts = value.split(" ")
    if len(parts) == 2 and _TIME.match(parts[1]):
        return parts[0]
    return value


def parse_date(text: str, fmt: str) -> date:
    """Read a date cell with one strptime format; raises ValueProblem."""
    value = date_part(text)
    try:
        return datetime.strptime(value, fmt).date()
    except ValueError as exc:
        raise ValueProblem(f"not a date in the form {fmt}: {text!r}") from exc


def decide_date_format(
    cells: list[tuple[int, str]], formats: Iterable[str] = DATE_FORMATS
) -> tuple[str, str | None]:
    """Pick the one date format of a file from its date cells.

    Prefers a format that reads every cell. When several do, the first in
    `formats` wins and the returned note records that no row decided it. When none
    reads every cell, the format that reads the most cells is returned and
    the caller reports the other rows.
    """
    formats = list(formats)
    if not cells:
        return formats[0], None
    counts: dict[str, int] = {}
    for fmt in formats:
        counts[fmt] = sum(1 for _row, text in cells if _fits(text, fmt))
    full = [fmt for fmt in formats if counts[fmt] == len(cells)]
    if full:
        note = None
        if len(full) > 1 and _orders_differ(full, cells):
            note = (
                f"no date decides between {', '.join(full)}; "
                f"read as {full[0]}"
            )
        return full[0], note
    best = max(formats, key=lambda fmt: counts[fmt])
    return best, None


def _fits(text: str, fmt: str) -> bool:
    try:
        parse_date(text, fmt)
    except ValueProblem:
        return False
    return True


def _orders_differ(formats: list[str], cells: list[tuple[int, str]]) -> bool:
    first = [parse_date(text, formats[0]) for _row, text in cells]
    for fmt in formats[1:]:
        if [parse_date(text, fmt) for _row, text in cells] != first:
            return True
    return False
