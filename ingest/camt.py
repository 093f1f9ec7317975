"""ISO 20022 camt.052, camt.053 and camt.054 files, plain or zipped.

A batch entry (`Btch` with several `TxDtls`) becomes one line per
transaction with its own amount; the details must add up to the entry.
The `TxsSummry` counts and sums must agree with the entries. Either fault
rejects the whole file, naming the entry.
"""

from __future__ import annotations

import io
import logging
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from ingest.assemble import clean_bank_id
from ingest.context import ReadContext
from ingest.records import ParsedStatement, StatementRecord
from ingest.values import ValueProblem, to_cents_decimal
from ingest.xmltree import XmlDocument, XmlError, parse_xml, text

log = logging.getLogger("cashmatch.ingest")

_KINDS = {
    "BkToCstmrAcctRpt": ("camt.052", "Rpt"),
    "BkToCstmrStmt": ("camt.053", "Stmt"),
    "BkToCstmrDbtCdtNtfctn": ("camt.054", "Ntfctn"),
}
_OPENING = ("OPBD", "PRCD")
_CLOSING = ("CLBD",)
MAX_ZIP_MEMBERS = 500
MAX_ZIP_BYTES = 200 * 1024 * 1024


def read_camt_zip(data: bytes, context: ReadContext) -> list[ParsedStatement]:
    """Read every camt document inside a ZIP archive, in member-name order."""
    problems = context.problems
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        problems.file(f"the ZIP archive cannot be opened ({exc}); send it again")
        return []
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS or \
                sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            problems.file("the ZIP archive is too large to be a statement "
                          f"delivery (at most {MAX_ZIP_MEMBERS} files and "
                          f"{MAX_ZIP_BYTES // 2**20} MiB); unpack it and import "
                          "the statements one by one")
            return []
        statements = []
        for member in sorted(members, key=lambda m: m.filename):
            content = archive.read(member)
            if b"camt.05" not in content[:4096] and b"BkToCstmr" not in content:
                continue
            statements += read_camt(content, context, member=member.filename,
                                    offset=len(statements))
    if not statements and not problems.file_problems:
        problems.file("the ZIP archive holds no camt statement")
    return statements


def read_camt(data: bytes, context: ReadContext, *,
              member: str | None = None, offset: int = 0) -> list[ParsedStatement]:
    """Read every statement, report or notification of a camt document."""
    problems = context.problems
    where = f" (archive member {member})" if member else ""
    try:
        document = parse_xml(data)
    except XmlError as exc:
        problems.file(f"{exc}{where}", line=exc.line)
        return []
    kind, statements = _statement_elements(document.root)
    if kind is None:
        problems.file(f"the XML is not a camt.052, camt.053 or camt.054 "
                      f"document{where}", line=1, value=document.root.tag)
        return []
    reader = _CamtReader(document, context, kind, where)
    parsed = []
    for index, element in enumerate(statements):
        context.problems.statement_index = offset + index
        parsed.append(reader.statement(element))
    return parsed


def _statement_elements(root: ET.Element):
    for child in list(root) + [root]:
        if child.tag in _KINDS:
            kind, tag = _KINDS[child.tag]
            return kind, child.findall(tag)
    return None, []


@dataclass
class _Entry:
    """The lines of one entry, and the entry's own amount for the checks."""

    amount: Decimal | None
    booked: bool
    lines: list[StatementRecord] = field(default_factory=list)


class _CamtReader:
    def __init__(self, document: XmlDocument, context: ReadContext, kind: str,
                 where: str):
        self.document = document
        self.context = context
        self.kind = kind
        self.where = where

    def statement(self, element: ET.Element) -> ParsedStatement:
        statement_id = text(element, "Id")
        account = text(element, "Acct/Id/IBAN") or text(element, "Acct/Id/Othr/Id")
        currency = text(element, "Acct/Ccy") or None
        closing = self._balance_element(element, _CLOSING)
        closing_date = self._date(closing, "Dt") if closing is not None else None
        # An entry without a date takes the statement's date, which is the
        # closing balance's date or else the end of the statement's period.
        self.fallback_date = closing_date or self._date(element, "FrToDt/ToDtTm")
        self.undated = 0
        entries = [self._entry(ntry, index, statement_id, currency)
                   for index, ntry in enumerate(element.findall("Ntry"), start=1)]
        self._check_summary(element, entries, statement_id)
        pending = sum(1 for entry in entries if not entry.booked)
        closing_balance = self._balance(element, _CLOSING)
        statement = ParsedStatement(
            file_name=self.context.file_name,
            format=self.kind,
            lines=[line for entry in entries if entry.booked for line in entry.lines],
            account=account or None,
            currency=currency,
            statement_id=statement_id or None,
            opening_balance=self._balance(element, _OPENING),
            closing_balance=closing_balance,
            closing_date=closing_date if closing_balance is not None else None,
        )
        if self.undated:
            statement.notes.append(
                f"{self.undated} entries have no booking or value date and take "
                f"the statement date {self.fallback_date}")
        if pending:
            statement.notes.append(f"{pending} entries are not booked (pending or "
                                   "information only) and were left out")
        return statement

    def _balance(self, element: ET.Element, codes: tuple[str, ...]) -> Decimal | None:
        balance = self._balance_element(element, codes)
        if balance is None:
            return None
        return self._signed(balance, balance.find("Amt"))

    def _balance_element(self, element: ET.Element,
                         codes: tuple[str, ...]) -> ET.Element | None:
        """Return the first `Bal` with a type in `codes`, trying codes in order."""
        for code in codes:
            for balance in element.findall("Bal"):
                kind = (text(balance, "Tp/CdOrPrtry/Cd")
                        or text(balance, "Tp/CdOrPrtry/Prtry"))
                if kind == code:
                    return balance
        return None

    def _signed(self, owner: ET.Element, amount: ET.Element | None,
                indicator: str | None = None) -> Decimal | None:
        value = text(amount)
        try:
            number = to_cents_decimal(value, shown=value)
        except ValueProblem as exc:
            self.context.problems.line(self.document.line(amount), "Amt", value,
                                       f"{exc}{self.where}")
            return None
        mark = indicator or text(owner, "CdtDbtInd")
        return -number if mark == "DBIT" else number

    def _entry(self, ntry: ET.Element, index: int, statement_id: str,
               currency: str | None) -> _Entry:
        status = text(ntry, "Sts/Cd") or text(ntry, "Sts") or "BOOK"
        amount = self._signed(ntry, ntry.find("Amt"))
        entry = _Entry(amount, status == "BOOK")
        if amount is None:
            return entry
        details = ntry.findall("NtryDtls/TxDtls")
        name = self._entry_name(ntry, index, statement_id)
        if len(details) <= 1:
            tx = details[0] if details else None
            entry.lines += self._line(ntry, tx, amount, currency)
            return entry
        total = Decimal("0.00")
        for tx in details:
            tx_amount = self._tx_amount(ntry, tx, name)
            if tx_amount is None:
                continue
            total += tx_amount
            entry.lines += self._line(ntry, tx, tx_amount, currency)
        if len(entry.lines) == len(details) and total != amount:
            self.context.problems.file(
                f"{name}: the amounts of its {len(details)} transaction details "
                f"add up to {total}, not to the entry's {amount}; the file is "
                f"inconsistent, so request it again from the bank{self.where}",
                line=self.document.line(ntry), field="NtryDtls/TxDtls/Amt",
                value=str(total),
            )
        return entry

    def _entry_name(self, ntry: ET.Element, index: int, statement_id: str) -> str:
        ref = text(ntry, "AcctSvcrRef") or text(ntry, "NtryRef")
        label = f"entry {ref}" if ref else f"entry {index}"
        return f"{label} of statement {statement_id}" if statement_id else label

    def _tx_amount(self, ntry: ET.Element, tx: ET.Element, name: str) -> Decimal | None:
        amount = tx.find("AmtDtls/TxAmt/Amt")
        if amount is None:
            amount = tx.find("Amt")
        if amount is None:
            self.context.problems.file(
                f"{name}: a batch transaction has no amount (AmtDtls/TxAmt or "
                f"Amt), so the batch cannot be split{self.where}",
                line=self.document.line(tx), field="TxDtls/Amt",
            )
            return None
        mark = text(tx, "CdtDbtInd") or text(ntry, "CdtDbtInd")
        return self._signed(tx, amount, mark)

    def _line(self, ntry: ET.Element, tx: ET.Element | None, amount: Decimal,
              currency: str | None) -> list[StatementRecord]:
        """Return the line in a list, or no line when it has no date."""
        credit = amount >= 0
        booking = self._date(ntry, "BookgDt") or self._date(ntry, "ValDt")
        if booking is None and self.fallback_date is not None:
            booking = self.fallback_date
            self.undated += 1
        if booking is None:
            self.context.problems.line(self.document.line(ntry), "BookgDt", None,
                                       f"the entry has no booking date{self.where}")
            return []
        party = "Dbtr" if credit else "Cdtr"
        bank_id = clean_bank_id(text(tx, "Refs/AcctSvcrRef")
                                or text(ntry, "AcctSvcrRef"))
        return [StatementRecord(
            line_ref="",
            booking_date=booking,
            amount=amount,
            currency=self._currency(ntry, tx, currency),
            counterparty_name=self._party_name(tx, party),
            counterparty_account=(text(tx, f"RltdPties/{party}Acct/Id/IBAN")
                                  or text(tx, f"RltdPties/{party}Acct/Id/Othr/Id")),
            memo=self._memo(ntry, tx),
            bank_reference=bank_id,
            value_date=self._date(ntry, "ValDt"),
            transaction_type=self._type(ntry, tx),
            is_reversal=text(ntry, "RvslInd").lower() in ("true", "1"),
            source_line=self.document.line(tx if tx is not None else ntry),
            bank_id=bank_id,
            customer_reference=clean_bank_id(text(tx, "Refs/EndToEndId")),
        )]

    def _currency(self, ntry: ET.Element, tx: ET.Element | None,
                  currency: str | None) -> str:
        for element in (tx.find("AmtDtls/TxAmt/Amt") if tx is not None else None,
                        tx.find("Amt") if tx is not None else None, ntry.find("Amt")):
            if element is not None and element.get("Ccy"):
                return element.get("Ccy").upper()
        return currency or self.context.currency

    def _party_name(self, tx: ET.Element | None, party: str) -> str:
        return (text(tx, f"RltdPties/{party}/Nm")
                or text(tx, f"RltdPties/{party}/Pty/Nm")
                or text(tx, f"RltdPties/Ultmt{party}/Nm")
                or text(tx, f"RltdPties/Ultmt{party}/Pty/Nm"))

    def _memo(self, ntry: ET.Element, tx: ET.Element | None) -> str:
        parts: list[str] = []
        if tx is not None:
            parts += [text(e) for e in tx.findall("RmtInf/Ustrd")]
            parts += [text(e) for e in tx.findall("RmtInf/Strd/CdtrRefInf/Ref")]
            parts.append(text(tx, "AddtlTxInf"))
        parts.append(text(ntry, "AddtlNtryInf"))
        unique: list[str] = []
        for part in parts:
            if part and part not in unique:
                unique.append(part)
        return " ".join(unique)

    def _type(self, ntry: ET.Element, tx: ET.Element | None) -> str:
        for owner in (tx, ntry):
            if owner is None:
                continue
            domain = text(owner, "BkTxCd/Domn/Cd")
            if domain:
                family = text(owner, "BkTxCd/Domn/Fmly/Cd")
                sub = text(owner, "BkTxCd/Domn/Fmly/SubFmlyCd")
                return "/".join(p for p in (domain, family, sub) if p)
            proprietary = text(owner, "BkTxCd/Prtry/Cd")
            if proprietary:
                return proprietary
        return ""

    def _date(self, owner: ET.Element, path: str) -> date | None:
        element = owner.find(path)
        if element is None:
            return None
        day, moment = text(element, "Dt"), text(element, "DtTm")
        if len(element) == 0:
            own = text(element)
            day, moment = (own, "") if "T" not in own else ("", own)
        try:
            if moment:
                parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
                if parsed.tzinfo is not None:
                    parsed = parsed.astimezone(self.context.timezone)
                return parsed.date()
            if day:
                return date.fromisoformat(day[:10])
        except ValueError:
            self.context.problems.line(self.document.line(element), path,
                                       moment or day, f"not a date{self.where}")
        return None

    def _check_summary(self, element: ET.Element, entries: list[_Entry],
                       statement_id: str) -> None:
        summary = element.find("TxsSummry")
        if summary is None:
            return
        amounts = [e.amount for e in entries if e.amount is not None]
        checks = [
            ("TtlNtries", amounts),
            ("TtlCdtNtries", [a for a in amounts if a >= 0]),
            ("TtlDbtNtries", [a for a in amounts if a < 0]),
        ]
        for tag, group in checks:
            self._check_count(summary, tag, group, statement_id)
        net = summary.find("TtlNtries/TtlNetNtry")
        if net is not None and amounts:
            declared = self._signed(net, net.find("Amt"))
            if declared is not None and declared != sum(amounts):
                self._summary_problem(summary, statement_id, "TtlNtries/TtlNetNtry",
                                      str(declared), f"a net sum of {sum(amounts)}")

    def _check_count(self, summary: ET.Element, tag: str, group: list[Decimal],
                     statement_id: str) -> None:
        count, total = text(summary, f"{tag}/NbOfNtries"), text(summary, f"{tag}/Sum")
        if count and count != str(len(group)):
            self._summary_problem(summary, statement_id, f"{tag}/NbOfNtries", count,
                                  f"{len(group)} entries")
        if total:
            actual = sum((abs(a) for a in group), Decimal("0.00"))
            try:
                declared = to_cents_decimal(total)
            except ValueProblem:
                declared = None
            if declared != actual:
                self._summary_problem(summary, statement_id, f"{tag}/Sum", total,
                                      f"a sum of {actual}")

    def _summary_problem(self, summary: ET.Element, statement_id: str, field_name: str,
                         value: str, actual: str) -> None:
        self.context.problems.file(
            f"statement {statement_id or '(no id)'}: the transaction summary says "
            f"{field_name} {value} but the file holds {actual}; the file is "
            f"incomplete, so request it again from the bank{self.where}",
            line=self.document.line(summary), field=field_name, value=value,
        )
