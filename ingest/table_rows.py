"""Reading the rows below a header with the columns a profile names."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from ingest.assemble import clean_bank_id
from ingest.context import ReadContext
from ingest.profiles import Profile, normalise_title
from ingest.records import ParsedStatement, StatementRecord
from ingest.tabular import Row
from ingest.values import (
    COMMA,
    DATE_FORMATS,
    DOT,
    ValueProblem,
    date_part,
    decide_date_format,
    decide_number_format,
    parse_amount,
    parse_date,
)

CURRENCY_NAMES = {
    "人民币": "CNY", "人民币元": "CNY", "rmb": "CNY", "美元": "USD",
    "港币": "HKD", "港元": "HKD", "欧元": "EUR", "日元": "JPY",
    "英镑": "GBP", "澳元": "AUD", "加元": "CAD",
}
_TOTAL = re.compile(r"合计|总计|^共\d+笔|^total\b|^summe\b", re.IGNORECASE)
_SPLIT_PARTY = re.compile(r"^(.*?)[\s:：]*(\d[\d*\- ]{5,})$")


@dataclass
class _Columns:
    """Column indexes of one table, from the profile and its header row."""

    single: dict[str, int]
    memo: list[int]
    direction: list[int]
    quotes: str = ""

    def get(self, row: Row, name: str) -> str:
        index = self.single.get(name)
        return self.cell(row, index) if index is not None else ""

    def cell(self, row: Row, index: int) -> str:
        text = row.cell(index)
        if self.quotes and len(text) > 1 and text[0] == text[-1] \
                and text[0] in self.quotes:
            return text[1:-1].strip()
        return text


@dataclass
class _Balances:
    """Balance rows found above, inside or below the table."""

    rows: dict[str, Row] = field(default_factory=dict)
    values: dict[str, Decimal] = field(default_factory=dict)


def _resolve(profile: Profile, header: Row | None) -> _Columns:
    if header is None:
        return _positional_columns(profile)
    titles = [normalise_title(cell) for cell in header.cells]
    single: dict[str, int] = {}
    for name, options in profile.columns.items():
        if name in ("memo", "direction"):
            continue
        for option in options:
            key = normalise_title(option)
            if key in titles:
                single[name] = titles.index(key)
                break
    return _Columns(single, _all(titles, profile.columns["memo"]),
                    _all(titles, profile.columns["direction"]),
                    quotes=profile.quote_chars)


def _positional_columns(profile: Profile) -> _Columns:
    single = {name: indexes[0] for name, indexes in profile.positions.items()
              if name not in ("memo", "direction")}
    return _Columns(single, list(profile.positions.get("memo", ())),
                    list(profile.positions.get("direction", ())),
                    quotes=profile.quote_chars)


def _all(titles: list[str], options: tuple[str, ...]) -> list[int]:
    found = []
    for option in options:
        key = normalise_title(option)
        if key in titles and titles.index(key) not in found:
            found.append(titles.index(key))
    return found


def read_profile_table(profile: Profile, rows: list[Row], header: Row | None,
                       context: ReadContext, *,
                       delimiter: str | None = None) -> list[ParsedStatement]:
    """Read the table under `header` into statements, one per account.

    `header` is None for a positional profile, whose table starts at the
    first row. `delimiter` is the CSV separator; with `decimal = "auto"` a
    `;` file defaults to a decimal comma when no amount decides the format.
    Rows whose account column names different accounts of ours become one
    statement per account, in the order the accounts first appear.
    """
    columns = _resolve(profile, header)
    start = header.number if header is not None else 0
    preamble = [row for row in rows if row.number < start]
    body, notes, balances = _body(profile, rows, start, columns)
    reader = _RowReader(profile, columns, context, notes, preamble)
    reader.comma_default = delimiter == ";"
    reader.decide_formats(body)
    reader.read_balances(balances)
    read: list[tuple[str | None, StatementRecord]] = []
    for row in body:
        line = reader.read(row)
        if line is not None:
            read.append((reader.account_of(row), line))
    return _statements(profile, context, preamble, _by_account(read, context),
                       balances, notes + reader.summary())


def _by_account(read: list[tuple[str | None, StatementRecord]],
                context: ReadContext) -> dict[str | None, list[StatementRecord]]:
    accounts: dict[str | None, list[StatementRecord]] = {}
    for account, _line in read:
        accounts.setdefault(account, [])
    split = len(accounts) > 1
    for position, (account, line) in enumerate(read, start=1):
        if split and not line.line_ref and not line.bank_id:
            # A line without a bank id is named by its position among the
            # file's lines, which the statements of a split file no longer
            # give, so the position is fixed here.
            line = dataclasses.replace(
                line, line_ref=f"{context.file_name}:{position}")
        accounts[account].append(line)
    return accounts


def _statements(profile: Profile, context: ReadContext, preamble: list[Row],
                accounts: dict[str | None, list[StatementRecord]],
                balances: _Balances, notes: list[str]) -> list[ParsedStatement]:
    default_account = _account(profile, preamble)
    if not accounts:
        accounts = {None: []}
    statements = [
        ParsedStatement(
            file_name=context.file_name,
            format="csv",
            lines=lines,
            account=account or default_account,
            currency=profile.currency,
            notes=list(notes),
        )
        for account, lines in accounts.items()
    ]
    if len(statements) == 1:
        statements[0].opening_balance = balances.values.get("opening")
        statements[0].closing_balance = balances.values.get("closing")
    elif balances.values:
        for statement in statements:
            statement.notes.append(
                f"the balance rows were not checked because the file holds "
                f"{len(statements)} accounts")
    return statements


def _body(profile: Profile, rows: list[Row], start: int,
          columns: _Columns) -> tuple[list[Row], list[str], _Balances]:
    body, notes = [], []
    balances = _Balances()
    amount_names = ("amount", "debit", "credit")
    for row in rows:
        if row.is_blank():
            continue
        first = next((cell for cell in row.cells if cell), "")
        kind = profile.balance_kind(first)
        if kind is not None and kind not in balances.rows:
            balances.rows[kind] = row
            if row.number > start:
                notes.append(_end_note(row, kind, rows))
                break
            continue
        if row.number <= start:
            continue
        if first.startswith(("---", "\x00csv-error")):
            if first.startswith("\x00"):
                body.append(row)
            break
        if _TOTAL.search(first):
            notes.append(f"row {row.number} is a totals row and was left out")
            continue
        amounts = [columns.get(row, name) for name in amount_names]
        no_amount = all(_blank(profile, value) for value in amounts)
        if no_amount and not _date_like(columns.get(row, "date")):
            notes.append(f"row {row.number} has no amount and no date "
                         "(a footer note) and was left out")
            continue
        body.append(row)
    return body, notes, balances


def _end_note(row: Row, kind: str, rows: list[Row]) -> str:
    after = sum(1 for other in rows if other.number > row.number
                and not other.is_blank())
    note = (f"row {row.number} holds the {kind} balance, not a transaction, "
            "so the table ends above it")
    if after == 1:
        note += "; the 1 non-blank row below it was left out"
    elif after:
        note += f"; the {after} non-blank rows below it were left out"
    return note


def _blank(profile: Profile, value: str) -> bool:
    return value.strip() in profile.blank_values


def _date_like(text: str) -> bool:
    return bool(re.match(r"^\s*\d{1,4}[-/.年]?\d{1,2}", text or ""))


def _account(profile: Profile, preamble: list[Row]) -> str | None:
    text = "\n".join(" ".join(row.cells) for row in preamble)
    for pattern in profile.account_patterns:
        match = re.search(pattern, text)
        if match:
            value = match.group(1).strip()
            if value:
                return value
    return None


class _RowReader:
    """Turns rows into statement lines with the file's formats."""

    def __init__(self, profile: Profile, columns: _Columns, context: ReadContext,
                 notes: list[str], preamble: list[Row]):
        self.profile = profile
        self.columns = columns
        self.context = context
        self.notes = notes
        self.decimal = DOT
        self.date_format = "%Y-%m-%d"
        self.year = _statement_month(profile, preamble)
        self.neutral = 0
        self.status_skipped = 0
        self.comma_default = False

    def decide_formats(self, body: list[Row]) -> None:
        problems = self.context.problems
        money = [(row.number, self.columns.get(row, name)) for row in body
                 for name in ("amount", "debit", "credit", "balance",
                              "balance_before")]
        money = [(n, text) for n, text in money if not _blank(self.profile, text)]
        if self.profile.decimal in (DOT, COMMA):
            self.decimal = self.profile.decimal
        else:
            default = COMMA if self.comma_default else DOT
            try:
                self.decimal, note = decide_number_format(money, default=default)
            except ValueProblem as exc:
                problems.file(f"{exc}", field="amount")
                return
            if note:
                self.notes.append(note)
        dates = [(row.number, self.columns.get(row, "date")) for row in body]
        dates = [(n, text) for n, text in dates if text]
        formats = self.profile.date_formats or DATE_FORMATS
        if self.profile.year_pattern and self.year is None:
            problems.file("the title row with the statement month is missing, so "
                          "dates without a year cannot be read; export the "
                          "statement again with its title", field="date")
        elif self.year is None:
            self.date_format, note = decide_date_format(dates, formats)
            if note:
                self.notes.append(note)
        else:
            self.date_format = formats[0]

    def read_balances(self, balances: _Balances) -> None:
        """Read the amounts of the balance rows with the file's number format."""
        for kind, row in balances.rows.items():
            value = self._balance_value(row)
            if value is None:
                self.context.problems.file(
                    f"the {kind} balance row holds no amount in the file's "
                    "number format; correct the row or remove it",
                    line=row.number, field=f"{kind}_balance",
                    value=" | ".join(cell for cell in row.cells if cell))
                continue
            balances.values[kind] = value

    def _balance_value(self, row: Row) -> Decimal | None:
        # The label is the first cell and the amount the last one that reads
        # as money; the columns in between differ from bank to bank.
        for cell in reversed(row.cells[1:]):
            if _blank(self.profile, cell):
                continue
            try:
                return parse_amount(cell, self.decimal)
            except ValueProblem:
                continue
        return None

    def account_of(self, row: Row) -> str | None:
        """Return our account as the row's account column names it, or None."""
        value = self.columns.get(row, "account").strip()
        return value or None

    def read(self, row: Row) -> StatementRecord | None:
        if row.cells and row.cells[0].startswith("\x00"):
            self.context.problems.line(row.number, None, None,
                                       "a quoted cell is never closed; fix the quotes")
            return None
        status = self.columns.get(row, "status")
        if status and status in self.profile.skip_status:
            self.status_skipped += 1
            return None
        problems = self.context.problems
        before = len(problems.line_problems)
        booking = self._date(row, "date")
        value_text = self.columns.get(row, "value_date")
        value_date = self._date(row, "value_date") if value_text else None
        amount = self._amount(row)
        if len(problems.line_problems) > before or booking is None:
            return None
        if amount is None:
            self.neutral += 1
            return None
        return self._record(row, booking, value_date, amount)

    def _record(self, row: Row, booking: date, value_date: date | None,
                amount: Decimal) -> StatementRecord:
        get = self.columns.get
        name, account = get(row, "counterparty_name"), get(row, "counterparty_account")
        if self.profile.split_counterparty and not account:
            match = _SPLIT_PARTY.match(name)
            if match:
                name, account = match.group(1).strip(), match.group(2).strip()
        kind = get(row, "type")
        found = self._memo_parts(row)
        name = name or found.get("counterparty_name", "")
        account = account or found.get("counterparty_account", "")
        kind = kind or found.get("type", "")
        reference = clean_bank_id(get(row, "reference"))
        return StatementRecord(
            line_ref="",
            booking_date=booking,
            amount=amount,
            currency=self._currency(row),
            counterparty_name=self._text(name),
            counterparty_account=self._text(account),
            memo=self._memo(row),
            bank_reference=reference,
            value_date=value_date,
            channel=self.profile.channel,
            transaction_type=kind,
            unknown_type=self._unknown(kind),
            source_line=row.number,
            bank_id=reference,
            balance=self._balance(row, amount),
        )

    def _text(self, value: str) -> str:
        return "" if _blank(self.profile, value) else " ".join(value.split())

    def _memo_parts(self, row: Row) -> dict[str, str]:
        """Return the fields the profile's memo pattern finds in a memo cell."""
        if not self.profile.memo_pattern:
            return {}
        for index in self.columns.memo:
            match = re.search(self.profile.memo_pattern,
                              self.columns.cell(row, index))
            if match:
                return {key: value.strip()
                        for key, value in match.groupdict().items() if value}
        return {}

    def _memo(self, row: Row) -> str:
        parts: list[str] = []
        for index in self.columns.memo:
            text = self._text(self.columns.cell(row, index))
            if text and text not in parts:
                parts.append(text)
        return " ".join(parts)

    def _date(self, row: Row, name: str) -> date | None:
        text = self.columns.get(row, name)
        try:
            if self.year is not None:
                return self._date_without_year(text)
            return parse_date(text, self.date_format)
        except ValueProblem:
            reason = (f"not a date in the file's date format {self.date_format}; "
                      "correct the row or pass the profile that fits")
            self.context.problems.line(row.number, name, text, reason)
            return None

    def _date_without_year(self, text: str) -> date:
        year, month = self.year
        parsed = parse_date(f"2000/{date_part(text)}", "%Y/" + self.date_format)
        if parsed.month > month:
            year -= 1
        try:
            return date(year, parsed.month, parsed.day)
        except ValueError as exc:
            raise ValueProblem(str(exc)) from exc

    def _money(self, text: str) -> Decimal | None:
        if _blank(self.profile, text):
            return None
        return parse_amount(text, self.decimal)

    def _amount(self, row: Row) -> Decimal | None:
        get = self.columns.get
        problems = self.context.problems
        try:
            if "amount" in self.columns.single:
                amount = self._money(get(row, "amount"))
                if amount is None:
                    problems.line(row.number, "amount", get(row, "amount"),
                                  "the amount is empty")
                    return None
                return self._signed(row, amount)
            credit = self._money(get(row, "credit")) or Decimal("0.00")
            debit = self._money(get(row, "debit")) or Decimal("0.00")
            return (abs(credit) - abs(debit)) * self.profile.amount_sign
        except ValueProblem as problem:
            name = "amount" if "amount" in self.columns.single else "debit/credit"
            value = get(row, "amount") or f"{get(row, 'debit')}/{get(row, 'credit')}"
            separator = "point" if self.decimal == DOT else "comma"
            problems.line(row.number, name, value,
                          f"{problem}, read with the file's decimal {separator}; "
                          "correct the row")
            return None

    def _signed(self, row: Row, amount: Decimal) -> Decimal | None:
        if not self.columns.direction:
            return amount * self.profile.amount_sign
        for index in self.columns.direction:
            value = normalise_title(row.cell(index))
            if not value:
                continue
            if _starts_with_any(value, self.profile.direction_in):
                return abs(amount)
            if _starts_with_any(value, self.profile.direction_out):
                return -abs(amount)
        # Neither in nor out: a move between the holder's own funds.
        return None

    def _currency(self, row: Row) -> str:
        text = self.columns.get(row, "currency").strip()
        code = CURRENCY_NAMES.get(text.lower(), CURRENCY_NAMES.get(text, text.upper()))
        if len(code) == 3 and code.isalpha():
            return code
        return self.profile.currency or self.context.currency

    def _balance(self, row: Row, amount: Decimal) -> Decimal | None:
        try:
            after = self._money(self.columns.get(row, "balance"))
            before = self._money(self.columns.get(row, "balance_before"))
        except ValueProblem:
            return None  # banks mask the balance (xx,yyyy.zz) in some exports
        if after is None and before is not None:
            return before + amount
        return after

    def _unknown(self, kind: str) -> bool:
        if not self.profile.known_types or not kind:
            return False
        if kind in self.profile.known_types:
            return False
        return not any(kind.startswith(p) for p in self.profile.known_type_prefixes)

    def summary(self) -> list[str]:
        notes = []
        if self.neutral:
            notes.append(f"{self.neutral} rows are neither money in nor money out "
                         "(transfers between the holder's own funds) and were left out")
        if self.status_skipped:
            notes.append(f"{self.status_skipped} rows with a closed or failed status "
                         "moved no money and were left out")
        return notes


def _starts_with_any(value: str, options: tuple[str, ...]) -> bool:
    return any(value.startswith(normalise_title(option)) for option in options)


def _statement_month(profile: Profile, preamble: list[Row]) -> tuple[int, int] | None:
    if not profile.year_pattern:
        return None
    text = "\n".join(" ".join(row.cells) for row in preamble)
    match = re.search(profile.year_pattern, text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))

