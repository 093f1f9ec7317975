"""MT940 and MT942 statements, read with the mt-940 library.

The library splits the file into statements and fields. This module turns
its output into statement lines with signed amounts (RC reversals are
negative), the `:86:` text as memo and the counterparty from structured
`:86:` fields. The `:61:` bank reference is the bank's id.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from decimal import Decimal

import mt940

from ingest.assemble import clean_bank_id
from ingest.context import ReadContext
from ingest.encoding import decode_bytes
from ingest.records import ParsedStatement, StatementRecord
from ingest.values import ValueProblem, to_cents_decimal

log = logging.getLogger("cashmatch.ingest")

# SWIFT transaction type codes of field 61 (the three letters after N or F).
# Banks also send three-digit proprietary codes, which are not unknown.
SWIFT_TYPES = frozenset(
    "BNK BOE BRF CAR CAS CHG CHK CLR CMI CMN CMP CMS CMT CMZ COL COM CPN DCR "
    "DDT DIS DIV EQA EXT FEX INT LBX LDP MAR MAT MGT MSC NWI ODC OPT PCH POP "
    "PRN REC RED RIG RTI SAL SEC SLE STO STP SUB SWP TAX TCK TCM TRA TRF TRN "
    "UWC VDA WAR".split()
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SWIFT_BLOCKS = re.compile(r"\{[1-3]:[^{}]*(?:\{[^{}]*\}[^{}]*)*\}|\{4:|-\}")
_STRUCTURED = re.compile(
    r"/(EREF|MARF|CSID|BENM|ORDP|NAME|REMI|ISDT|IBAN|BIC|ADDR|CNTP|PURP|"
    r"RTRN|ULTC|ULTD|TRCD|BUSP|PREF|SWOC|EXCH|CHGS|CDTRREFTP|CDTRREF|CD|ID)/"
)
_LABELLED = {
    "name": re.compile(r"NAAM:\s*([^/\n]+)"),
    "account": re.compile(r"REK:\s*([A-Z]{2}\d{2}[A-Z0-9]{4,30}|\d{6,})"),
}
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b")
# SWIFT lines are 65 characters wide, but some banks wrap a few earlier.
LINE_WIDTH = 60


def read_mt940(data: bytes, context: ReadContext) -> list[ParsedStatement]:
    """Read every statement of an MT940 or MT942 file."""
    decoded = decode_bytes(data, file_name=context.file_name,
                           fallbacks=("cp852",), detect=False)
    text = _clean(decoded.text)
    try:
        blocks = mt940.parse_statements(text, options=mt940.Options.all())
    except Exception as exc:  # mt-940 raises plain ValueError, KeyError and more
        context.problems.file(
            f"the MT940 text cannot be parsed ({type(exc).__name__}: {exc}); "
            "request the statement again from the bank"
        )
        return []

    numbers = _transaction_lines(text, blocks)
    statements = []
    for index, block in enumerate(blocks):
        context.problems.statement_index = index
        statement = _statement(block, numbers, context)
        statement.encoding = decoded.encoding
        statement.notes += decoded.notes
        statements.append(statement)
    if not statements:
        context.problems.file("the file has no :20: statement; it is not MT940")
    return statements


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SWIFT_BLOCKS.sub("", text)
    return _CONTROL.sub("", text)


def _transaction_lines(text: str, blocks) -> list[int | None]:
    """Return the file line of each `:61:` field, in transaction order."""
    numbers: list[int | None] = [
        number for number, line in enumerate(text.split("\n"), start=1)
        if line.startswith(":61:")
    ]
    count = sum(len(block.transactions) for block in blocks)
    # The library opens one transaction per :61: field. When the counts
    # differ, the lines get no number rather than a wrong one.
    return numbers if len(numbers) == count else [None] * count


def _statement(block, numbers: list[int | None],
               context: ReadContext) -> ParsedStatement:
    data = block.data
    opening, _ = _balance(data, "final_opening_balance",
                          "intermediate_opening_balance", "opening_balance")
    closing, closing_date = _balance(data, "final_closing_balance",
                                     "intermediate_closing_balance",
                                     "closing_balance")
    is_942 = "floor_limit_indicator" in data or "date_time_indication" in data or any(
        key.endswith("floor_limit") for key in data
    )
    currency = block.currency or context.currency
    lines = []
    for transaction in block.transactions:
        number = numbers.pop(0) if numbers else None
        line = _line(transaction.data, currency, context, number)
        if line is not None:
            lines.append(line)
    return ParsedStatement(
        file_name=context.file_name,
        format="mt942" if is_942 and opening is None else "mt940",
        lines=lines,
        account=(data.get("account_identification") or "").strip() or None,
        currency=currency,
        statement_id=(data.get("transaction_reference") or "").strip() or None,
        opening_balance=opening,
        closing_balance=closing,
        closing_date=closing_date,
    )


def _balance(data: dict, *keys: str) -> tuple[Decimal | None, date | None]:
    """Return the amount and date of the first balance field among `keys`."""
    for key in keys:
        balance = data.get(key)
        if balance is None:
            continue
        amount = to_cents_decimal(str(balance.amount.amount))
        day = balance.date
        if day is None:
            return amount, None
        return amount, date(day.year, day.month, day.day)
    return None, None


def _line(data: dict, currency: str, context: ReadContext,
          number: int | None) -> StatementRecord | None:
    status = (data.get("status") or "").upper()
    try:
        amount = to_cents_decimal(str(data["amount"].amount))
    except (ValueProblem, KeyError) as exc:
        context.problems.line(number, ":61: amount", data.get("amount"),
                              f"{exc}; request the statement again from the bank")
        return None
    value_date: date = data.get("date")
    booking_date = data.get("entry_date") or value_date
    code = (data.get("id") or "").strip()
    customer_ref = clean_bank_id(data.get("customer_reference"))
    name, account, memo = _details(data)
    if customer_ref and customer_ref not in memo:
        memo = f"{customer_ref} {memo}".strip()

    return StatementRecord(
        line_ref="",
        booking_date=date(booking_date.year, booking_date.month, booking_date.day),
        amount=amount,
        currency=(data.get("currency") or currency or context.currency).upper(),
        counterparty_name=name,
        counterparty_account=account,
        memo=memo,
        bank_reference=clean_bank_id(data.get("bank_reference")),
        value_date=date(value_date.year, value_date.month, value_date.day),
        transaction_type=code,
        is_reversal=status.startswith("R"),
        unknown_type=_unknown(code),
        bank_id=clean_bank_id(data.get("bank_reference")),
        customer_reference=customer_ref,
        source_line=number,
    )


def _unknown(code: str) -> bool:
    letters = code[1:].strip()
    if code[:1] == "S" and (not letters or letters.isdigit()):
        return False
    if letters.isdigit():
        return False
    return letters not in SWIFT_TYPES


def _details(data: dict) -> tuple[str, str, str]:
    """Return counterparty name, counterparty account and memo of a line."""
    name = (data.get("applicant_name") or "").strip()
    account = (data.get("applicant_iban") or "").strip()
    purpose = " ".join(
        part.strip() for part in (data.get("purpose"), data.get("additional_purpose"))
        if part and part.strip()
    )
    raw = _unwrap(data.get("transaction_details") or "")
    memo = purpose or raw
    if raw.startswith("/") and _STRUCTURED.search(raw):
        fields = _structured(raw)
        name = name or fields.get("NAME", "")
        account = account or fields.get("IBAN", "")
        memo = purpose or fields.get("REMI", "") or raw
    for key, pattern in _LABELLED.items():
        match = pattern.search(raw)
        if match and key == "name" and not name:
            name = match.group(1).strip()
        if match and key == "account" and not account:
            account = match.group(1).strip()
    if not account:
        match = _IBAN.search(data.get("extra_details") or "")
        account = match.group(0) if match else ""
    return name, account, memo


def _unwrap(details: str) -> str:
    # SWIFT wraps :86: at 65 characters, so a full-width line continues on
    # the next one mid-word, while a shorter line ended a field.
    # NOTE: a bank that wraps shorter than LINE_WIDTH gets a space inside
    # the wrapped word (seen at 35 characters in a Hungarian export).
    parts = details.split("\n")
    text = ""
    for index, part in enumerate(parts):
        text += part
        full = len(part) >= LINE_WIDTH
        if index < len(parts) - 1 and not full:
            text += " "
    return " ".join(text.split())


def _structured(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    pieces = _STRUCTURED.split(text)
    for key, value in zip(pieces[1::2], pieces[2::2], strict=True):
        value = value.strip().strip("/").strip()
        if value and key not in fields:
            fields[key] = value
    return fields
