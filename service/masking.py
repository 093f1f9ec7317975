"""Masking of payers' personal data: names of persons and account numbers.

Who sees what:

- `erp`, `clerk` and `admin` keys see statement lines as the bank sent
  them, because booking money and deciding review tasks needs the payer's
  name and account.
- `analyst` keys read reports and train models, which needs neither. They
  see a person's name masked (张伟 as 张*, John Smith as J*** S****) and
  every account number masked (6222020012344567 as 6222****4567), in the
  counterparty fields, in memos and candidate reasons, in customers'
  names, aliases and bank accounts, in reports and in exports. Company
  names stay readable, because they are not personal data.
- Logs mask account numbers for everyone (see `service.logging_setup`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from pydantic import BaseModel

from features.text import COMPANY_SUFFIXES, fold_width, is_person_name

ModelT = TypeVar("ModelT", bound=BaseModel)
MASKED_ROLES = frozenset({"analyst"})
MASK = "****"
# Bank and card account numbers have 12 to 30 digits, often written in
# groups of four. Order numbers and amounts are shorter.
ACCOUNT_NUMBER = re.compile(r"(?<![\dA-Za-z])\d(?:[ -]?\d){11,29}(?![\dA-Za-z])")
LATIN_PERSON = re.compile(r"^[A-Za-z][A-Za-z'.-]*(?: [A-Za-z][A-Za-z'.-]*){1,3}$")
# Words that mark a Latin-script name as an organisation, not a person.
ORGANISATION_WORDS = frozenset(
    {
        "BANK",
        "CLUB",
        "COMPANY",
        "CORP",
        "CORPORATION",
        "GROUP",
        "HOLDINGS",
        "INDUSTRIES",
        "INTERNATIONAL",
        "LLC",
        "LLP",
        "PLC",
        "SERVICES",
        "SHOP",
        "STORE",
        "TRADING",
    }
)


def needs_masking(role: str) -> bool:
    """Tell whether a role sees payers' personal data masked."""
    return role in MASKED_ROLES


def mask_account(number: str) -> str:
    """Mask an account number, keeping the first and last four digits.

    A number of 12 or more characters keeps both ends (6222****4567), a
    shorter one only its last four, and one of four or fewer nothing.
    """
    compact = re.sub(r"[\s-]", "", number or "")
    if not compact:
        return ""
    if len(compact) >= 12:
        return f"{compact[:4]}{MASK}{compact[-4:]}"
    if len(compact) > 4:
        return f"{MASK}{compact[-4:]}"
    return MASK


def is_latin_person_name(name: str) -> bool:
    """Tell whether a Latin-script name looks like a person's, not a firm's."""
    folded = fold_width(name).strip()
    if not LATIN_PERSON.match(folded):
        return False
    words = {word.strip(".").upper() for word in folded.split()}
    suffixes = {suffix.strip(".").upper() for suffix in COMPANY_SUFFIXES}
    return not words & (ORGANISATION_WORDS | suffixes)


def mask_name(name: str) -> str:
    """Mask a person's name, keeping the first letter of each part.

    Names that look like companies are returned unchanged.
    """
    text = name or ""
    if is_person_name(text):
        squeezed = text.strip()
        return squeezed[0] + "*" * (len(squeezed) - 1)
    if is_latin_person_name(text):
        return " ".join(word[0] + "*" * (len(word) - 1) for word in text.split())
    return text


def mask_account_numbers(text: str) -> str:
    """Mask every account number that appears in free text."""
    return ACCOUNT_NUMBER.sub(lambda match: mask_account(match.group()), text or "")


def mask_text(text: str, *, names: Iterable[str] = ()) -> str:
    """Mask account numbers and the given person names in free text."""
    masked = mask_account_numbers(text)
    for name in names:
        hidden = mask_name(name)
        if name and hidden != name:
            masked = masked.replace(name, hidden)
    return masked


def mask_line_fields(fields: dict) -> dict:
    """Return a copy of a line's fields with the payer's data masked.

    Reads and writes the keys `counterparty_name`, `counterparty_account`
    and `memo` where present; other keys are copied as they are.
    """
    masked = dict(fields)
    name = fields.get("counterparty_name") or ""
    if "counterparty_name" in fields:
        masked["counterparty_name"] = mask_name(name)
    if "counterparty_account" in fields:
        masked["counterparty_account"] = mask_account(
            fields.get("counterparty_account") or ""
        )
    if "memo" in fields:
        masked["memo"] = mask_text(fields.get("memo") or "", names=[name])
    return masked


def mask_report_row(row: dict) -> dict:
    """Return a copy of a report row with payers' and customers' data masked.

    Masks the line fields of `mask_line_fields`, the customer's `name` and,
    in `detail`, that name and any account number.
    """
    masked = mask_line_fields(row)
    name = row.get("name") or ""
    if "name" in row:
        masked["name"] = mask_name(name)
    if "detail" in row:
        masked["detail"] = mask_text(str(row.get("detail") or ""), names=[name])
    return masked


def mask_customer_fields(fields: dict) -> dict:
    """Return a copy of a customer record with its personal data masked.

    Reads and writes the keys `name`, `aliases` and `bank_accounts` where
    present; other keys are copied as they are.
    """
    masked = dict(fields)
    if "name" in fields:
        masked["name"] = mask_name(fields.get("name") or "")
    if "aliases" in fields:
        masked["aliases"] = [mask_name(alias) for alias in fields["aliases"]]
    if "bank_accounts" in fields:
        masked["bank_accounts"] = [
            mask_account(number) for number in fields["bank_accounts"]
        ]
    return masked


def mask_customer_ledger(record: dict) -> dict:
    """Return a copy of a customer's ledger record with personal data masked.

    The customer's `name` is masked, and so are that name and account
    numbers in the notes of `entries` and `requests` and in the
    `anomalies`. Ids, kinds and amounts are kept.
    """
    name = record.get("name") or ""
    masked = dict(record)
    masked["name"] = mask_name(name)
    for key in ("entries", "requests"):
        if key in record:
            masked[key] = [
                {**item, "note": mask_text(item.get("note") or "", names=[name])}
                for item in record[key]
            ]
    if "anomalies" in record:
        masked["anomalies"] = [mask_report_row(item) for item in record["anomalies"]]
    return masked


def mask_nested(value, *, names: Iterable[str]):
    """Mask account numbers and names in every string of a JSON-like value."""
    names = tuple(names)
    if isinstance(value, str):
        return mask_text(value, names=names)
    if isinstance(value, list):
        return [mask_nested(item, names=names) for item in value]
    if isinstance(value, tuple):
        return tuple(mask_nested(item, names=names) for item in value)
    if isinstance(value, dict):
        return {key: mask_nested(item, names=names) for key, item in value.items()}
    return value


# Keys of API records whose values are free text about the line, such as
# candidate reasons that quote the payer's name or account.
FREE_TEXT_KEYS = frozenset({"candidates", "reasons"})


def mask_record(record, *, names: Iterable[str] | None = None):
    """Mask payer data in an API record: a line, a task or a result.

    Every dict that has `counterparty_name` is masked as a line, and the
    free text under `candidates` and `reasons` loses the payers' names and
    account numbers. Ids, line_refs and amounts are kept.
    """
    if names is None:
        names = tuple(_counterparty_names(record))
    if isinstance(record, list):
        return [mask_record(item, names=names) for item in record]
    if not isinstance(record, dict):
        return record
    fields = mask_line_fields(record) if "counterparty_name" in record else record
    return {
        key: (
            mask_nested(value, names=names)
            if key in FREE_TEXT_KEYS
            else mask_record(value, names=names)
        )
        for key, value in fields.items()
    }


def _counterparty_names(record) -> Iterable[str]:
    if isinstance(record, list):
        for item in record:
            yield from _counterparty_names(item)
    elif isinstance(record, dict):
        if record.get("counterparty_name"):
            yield record["counterparty_name"]
        for value in record.values():
            yield from _counterparty_names(value)


def masked_for(
    role: str, model: ModelT, mask: Callable[[dict], dict] = mask_record
) -> ModelT:
    """Return an API model as the role may see it (see the module notes).

    `mask` masks the model's dumped fields; the default suits lines, tasks
    and results.
    """
    if not needs_masking(role):
        return model
    return type(model).model_validate(mask(model.model_dump()))
