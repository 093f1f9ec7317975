"""De-duplication keys that recognise a statement line on re-import.

A line with a bank id is keyed by account, booking date, amount, the bank id
and its occurrence among the lines that share that id (an OFX fee sharing a
FITID with its payment is occurrence 2). The bank id alone is never the key,
because banks reuse ids across accounts and days.

A line without a bank id is keyed by a fingerprint of account, booking
date, amount, counterparty and memo, plus its rank among identical lines of
that day in the statement. Two identical payments on one day therefore get
ranks 0 and 1 and stay distinct, while the same file imported again, or an
overlapping statement, gives the same keys.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter

from ingest.records import ParsedStatement, StatementRecord

KEY_LENGTH = 24  # hex digits, 96 bits


def dedupe_key(
    statement: ParsedStatement,
    line: StatementRecord,
    rank: int,
    *,
    account: str,
) -> str:
    """Return the de-duplication key of one line of `statement`.

    `rank` counts from 0: the occurrence of the line's bank id among the
    statement's lines, or without a bank id its rank among identical lines
    of that day. `dedupe_keys` computes the ranks.
    """
    del statement  # the key depends on the line alone, not its file
    if line.bank_id:
        parts = ["id", account, line.booking_date.isoformat(),
                 _amount(line), line.bank_id, str(rank)]
    else:
        parts = ["fp", *_fingerprint(line, account), str(rank)]
    text = "\x1f".join(parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def dedupe_keys(statement: ParsedStatement, *, account: str) -> list[str]:
    """Return the keys of all lines of `statement`, in line order."""
    seen: Counter[tuple[str, ...]] = Counter()
    keys = []
    for line in statement.lines:
        group = _group(line, account)
        rank = seen[group]
        seen[group] += 1
        keys.append(dedupe_key(statement, line, rank, account=account))
    return keys


def _group(line: StatementRecord, account: str) -> tuple[str, ...]:
    if line.bank_id:
        return ("id", line.bank_id)
    return ("fp", *_fingerprint(line, account))


def _fingerprint(line: StatementRecord, account: str) -> tuple[str, ...]:
    return (
        account,
        line.booking_date.isoformat(),
        _amount(line),
        line.currency.upper(),
        _text(line.counterparty_name),
        _text(line.counterparty_account),
        _text(line.memo),
    )


def _amount(line: StatementRecord) -> str:
    return f"{line.amount:.2f}"


def _text(value: str) -> str:
    # Full-width forms, case and spacing differ between two exports of one
    # transaction, so they must not change the fingerprint.
    folded = unicodedata.normalize("NFKC", value).casefold()
    return " ".join(folded.split())
