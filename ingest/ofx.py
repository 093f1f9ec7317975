"""OFX 1.x (SGML) and 2.x (XML) statements, parsed with ofxtools.

The header is handled here because files lie about it: an OFX 1.02 header
may declare CHARSET:1252 over a UTF-8 body. The bytes are decoded by what
they are (noting the fallback), and ofxtools' tree builder parses the body,
closing SGML's unclosed leaf elements. The element tree is then read
leniently rather than through ofxtools' strict model classes, which reject
common bank deviations such as a decimal comma in TRNAMT.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal

from ofxtools.Parser import TreeBuilder
from ofxtools.Types import DateTime

from ingest.assemble import clean_bank_id
from ingest.context import ReadContext
from ingest.encoding import decode_bytes
from ingest.records import ParsedStatement, StatementRecord
from ingest.values import COMMA, DOT, ValueProblem, parse_amount
from ingest.xmltree import text

log = logging.getLogger("cashmatch.ingest")

KNOWN_TYPES = frozenset(
    "CREDIT DEBIT INT DIV FEE SRVCHG DEP ATM POS XFER CHECK PAYMENT CASH "
    "DIRECTDEP DIRECTDEBIT REPEATPMT HOLD OTHER".split()
)
_STATEMENTS = ("STMTRS", "CCSTMTRS", "INVSTMTRS")
_ACCOUNTS = ("BANKACCTFROM/ACCTID", "CCACCTFROM/ACCTID", "INVACCTFROM/ACCTID")
_V1_CHARSET = re.compile(r"(?m)^\s*CHARSET:\s*([\w-]+)")
_V2_ENCODING = re.compile(r"<\?xml[^>]*encoding=[\"']([\w-]+)[\"']")
_DATE = re.compile(r"^(\d{8})")


def read_ofx(data: bytes, context: ReadContext) -> list[ParsedStatement]:
    """Read every statement (bank, credit card, investment cash) of an OFX file."""
    problems = context.problems
    decoded = decode_bytes(data, file_name=context.file_name,
                           declared=_declared_charset(data),
                           fallbacks=("cp1252",), detect=False)
    body = _body(decoded.text)
    if body is None:
        problems.file("the file has an OFX header but no <OFX> element",
                      field="OFX")
        return []
    try:
        builder = TreeBuilder()
        builder.feed(body)
        root = builder.close()
    except Exception as exc:  # ofxtools raises ParseError and IndexError
        problems.file(f"the OFX markup cannot be parsed ({exc}); request the "
                      "file again from the bank", field="OFX")
        return []

    statements = []
    for index, element in enumerate(_statement_elements(root)):
        problems.statement_index = index
        statement = _statement(element, context)
        statement.encoding = decoded.encoding
        statement.notes = decoded.notes + statement.notes
        statements.append(statement)
    if not statements:
        problems.file("the OFX file holds no bank, credit card or investment "
                      "statement (STMTRS, CCSTMTRS or INVSTMTRS)", field="OFX")
    return statements


def _declared_charset(data: bytes) -> str | None:
    head = data[:2048].decode("latin-1")
    match = _V1_CHARSET.search(head)
    if match:
        value = match.group(1).upper()
        return None if value == "NONE" else value
    match = _V2_ENCODING.search(head)
    return match.group(1) if match else None


def _body(text_value: str) -> str | None:
    start = text_value.find("<OFX>")
    if start < 0:
        start = text_value.upper().find("<OFX>")
    if start < 0:
        return None
    return text_value[start:].strip()


def _statement_elements(root: ET.Element) -> list[ET.Element]:
    return [element for element in root.iter() if element.tag in _STATEMENTS]


def _statement(element: ET.Element, context: ReadContext) -> ParsedStatement:
    currency = text(element, "CURDEF").upper() or None
    account = next((text(element, path) for path in _ACCOUNTS if text(element, path)),
                   None)
    lines = []
    for position, transaction in enumerate(element.iter("STMTTRN"), start=1):
        line = _line(transaction, position, currency, context)
        if line is not None:
            lines.append(line)
    closing = _amount_or_none(text(element, "LEDGERBAL/BALAMT"))
    statement = ParsedStatement(
        file_name=context.file_name,
        format="ofx",
        lines=lines,
        account=account,
        currency=currency,
        closing_balance=closing,
    )
    if closing is not None:
        statement.notes.append("OFX gives no opening balance, so the lines "
                               "were not checked against the ledger balance")
        statement.closing_date = _closing_date(element, statement, context)
    return statement


def _closing_date(element: ET.Element, statement: ParsedStatement,
                  context: ReadContext) -> date | None:
    """Return the LEDGERBAL date, and note a DTASOF that is not a date."""
    value = text(element, "LEDGERBAL/DTASOF")
    if not value:
        return None
    day = _parse_date(value, context)
    if day is None:
        statement.notes.append(f"the ledger balance date DTASOF {value!r} is "
                               "not a date (expected YYYYMMDD), so the closing "
                               "balance has no date")
    return day


def _line(transaction: ET.Element, position: int, currency: str | None,
          context: ReadContext) -> StatementRecord | None:
    problems = context.problems
    raw_amount = text(transaction, "TRNAMT")
    try:
        amount = _amount(raw_amount)
    except ValueProblem:
        problems.line(None, "TRNAMT", raw_amount,
                      f"transaction {position} has no valid amount")
        return None
    booking = _date(transaction, "DTPOSTED", position, context)
    if booking is None:
        return None
    kind = text(transaction, "TRNTYPE").upper()
    fitid = clean_bank_id(text(transaction, "FITID"))
    line_currency = (text(transaction, "CURRENCY/CURSYM")
                     or text(transaction, "ORIGCURRENCY/CURSYM") or currency
                     or context.currency)
    return StatementRecord(
        line_ref="",
        booking_date=booking,
        amount=amount,
        currency=line_currency.upper(),
        counterparty_name=text(transaction, "NAME") or text(transaction, "PAYEE/NAME"),
        counterparty_account=(text(transaction, "BANKACCTTO/ACCTID")
                              or text(transaction, "CCACCTTO/ACCTID")),
        memo=text(transaction, "MEMO"),
        bank_reference=fitid,
        value_date=_date(transaction, "DTUSER", position, context, required=False),
        transaction_type=kind,
        unknown_type=bool(kind) and kind not in KNOWN_TYPES,
        bank_id=fitid,
        customer_reference=text(transaction, "CHECKNUM") or text(transaction, "REFNUM"),
    )


def _amount(value: str) -> Decimal:
    # Some European banks write TRNAMT with a decimal comma, against the spec.
    separator = COMMA if "," in value and "." not in value else DOT
    return parse_amount(value, separator)


def _amount_or_none(value: str) -> Decimal | None:
    try:
        return _amount(value) if value else None
    except ValueProblem:
        return None


def _date(transaction: ET.Element, tag: str, position: int, context: ReadContext,
          *, required: bool = True) -> date | None:
    value = text(transaction, tag)
    if not value and not required:
        return None
    day = _parse_date(value, context)
    if day is None and required:
        context.problems.line(None, tag, value,
                              f"transaction {position} has no valid date "
                              "(expected YYYYMMDD)")
    return day


def _parse_date(value: str, context: ReadContext) -> date | None:
    """Return the calendar date of an OFX date-time, or None for an invalid one."""
    try:
        if "[" in value:
            # An explicit offset: convert to the account's zone before
            # taking the calendar date.
            moment = DateTime().convert(value)
            return moment.astimezone(context.timezone).date()
        match = _DATE.match(value)
        if match:
            digits = match.group(1)
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except Exception:  # ofxtools raises OFXSpecError, a ValueError subclass
        pass
    return None
