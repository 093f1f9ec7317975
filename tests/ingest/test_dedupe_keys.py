"""De-duplication keys: stable on re-import, distinct for distinct lines."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest

from ingest import dedupe_key, dedupe_keys
from ingest.records import ParsedStatement, StatementRecord

LINE = StatementRecord(
    line_ref="statement.csv:1",
    booking_date=date(2025, 4, 2),
    amount=Decimal("18.00"),
    currency="CNY",
    counterparty_name="上海远景贸易有限公司",
    memo="SO-1201",
)


def _statement(*lines: StatementRecord) -> ParsedStatement:
    return ParsedStatement(file_name="statement.csv", format="csv", lines=list(lines))


def test_dedupe_key_is_short_hex():
    [key] = dedupe_keys(_statement(LINE), account="A1")

    assert len(key) == 24
    assert int(key, 16) >= 0


def test_dedupe_identical_lines_get_ranks():
    keys = dedupe_keys(_statement(LINE, LINE), account="A1")

    assert keys[0] != keys[1]
    assert keys[0] == dedupe_key(_statement(LINE), LINE, 0, account="A1")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"booking_date": date(2025, 4, 3)}, id="date"),
        pytest.param({"amount": Decimal("18.01")}, id="amount"),
        pytest.param({"counterparty_name": "杭州明达科技有限公司"}, id="counterparty"),
        pytest.param({"memo": "SO-1202"}, id="memo"),
        pytest.param({"bank_id": "B-1"}, id="bank-id"),
    ],
)
def test_dedupe_key_changes_with_line(change):
    other = dataclasses.replace(LINE, **change)

    [first] = dedupe_keys(_statement(LINE), account="A1")
    [second] = dedupe_keys(_statement(other), account="A1")

    assert first != second


def test_dedupe_key_ignores_width_case_and_spacing():
    other = dataclasses.replace(LINE, memo="  so－１２０１ ", line_ref="other.csv:9")

    assert dedupe_keys(_statement(LINE), account="A1") == \
        dedupe_keys(_statement(other), account="A1")


def test_dedupe_bank_id_never_alone():
    with_id = dataclasses.replace(LINE, bank_id="B-1")
    other_day = dataclasses.replace(with_id, booking_date=date(2025, 5, 2))

    [first] = dedupe_keys(_statement(with_id), account="A1")
    [second] = dedupe_keys(_statement(other_day), account="A1")
    [third] = dedupe_keys(_statement(with_id), account="A2")

    assert len({first, second, third}) == 3
