"""The canonical statement CSV: strict columns, all problems at once."""

from __future__ import annotations

import codecs
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ingest import read_statements
from models.errors import ImportFormatError

HEADER = ("line_ref,booking_date,amount,currency,counterparty_name,"
          "counterparty_account,memo,bank_reference\n")


def test_canonical_reads_every_column():
    data = HEADER + ("L-1,2025-06-03,1200.00,CNY,上海远景贸易有限公司,"
                     "6222020000001234,货款 SO-4101,B-88\n")

    [statement] = read_statements(data.encode(), file_name="statement.csv",
                                  account="ACC-1")

    [line] = statement.lines
    assert statement.format == "csv"
    assert statement.account == "ACC-1"
    assert line.line_ref == "L-1"
    assert line.booking_date == date(2025, 6, 3)
    assert line.amount == Decimal("1200.00")
    assert line.counterparty_name == "上海远景贸易有限公司"
    assert line.counterparty_account == "6222020000001234"
    assert line.memo == "货款 SO-4101"
    assert line.bank_reference == "B-88"
    assert line.source_line == 2


def test_canonical_with_bom_from_path(tmp_path: Path):
    path = tmp_path / "statement.txt"
    path.write_bytes(codecs.BOM_UTF8 + (HEADER + "L-1,2025-06-03,-5.00,CNY,,,,\n")
                     .encode())

    [statement] = read_statements(path)

    assert statement.file_name == "statement.txt"
    assert statement.lines[0].amount == Decimal("-5.00")
    assert statement.account == "default"


def test_canonical_empty_line_ref_uses_position():
    data = HEADER + ",2025-06-03,1.00,CNY,,,,\n,2025-06-04,2.00,CNY,,,,\n"

    [statement] = read_statements(data.encode(), file_name="statement.csv")

    refs = [line.line_ref for line in statement.lines]
    assert refs == ["statement.csv:1", "statement.csv:2"]


def test_canonical_collects_all_problems():
    data = HEADER + ("L-1,2025-13-01,1.00,CNY,,,,\n"
                     "L-2,2025-06-01,1.234,CNY,,,,\n"
                     "L-3,2025-06-01,12,50,CNY,,,\n")

    with pytest.raises(ImportFormatError) as info:
        read_statements(data.encode(), file_name="statement.csv")

    problems = info.value.problems
    assert [(p.line, p.field) for p in problems] == [
        (2, "booking_date"), (3, "amount"), (4, "currency")]
    assert problems[0].value == "2025-13-01"
    assert "YYYY-MM-DD" in problems[0].reason


def test_canonical_skip_bad_lines_lists_them():
    data = HEADER + "L-1,2025-06-01,1.00,CNY,,,,\nL-2,yesterday,2.00,CNY,,,,\n"

    [statement] = read_statements(data.encode(), file_name="statement.csv",
                                  skip_bad_lines=True)

    assert [line.line_ref for line in statement.lines] == ["L-1"]
    assert statement.skipped[0].line == 3
    assert statement.skipped[0].value == "yesterday"


def test_canonical_keeps_foreign_currency_per_line():
    data = HEADER + "L-1,2025-06-01,1.00,CNY,,,,\nL-2,2025-06-01,2.00,USD,,,,\n"

    [statement] = read_statements(data.encode(), file_name="statement.csv")

    assert [line.currency for line in statement.lines] == ["CNY", "USD"]
    assert statement.currency == "CNY"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "the file is empty", id="empty"),
        pytest.param(b"hello world\nthis is no statement\n", "no known statement",
                     id="prose"),
        pytest.param(b"\xff\xfe\x00", "cannot be read|not valid|no known",
                     id="binary"),
    ],
)
def test_read_statements_rejects_non_statements(data, message):
    with pytest.raises(ImportFormatError, match=message):
        read_statements(data, file_name="x.csv")


def test_read_statements_missing_path_is_format_error(tmp_path: Path):
    with pytest.raises(ImportFormatError, match="cannot be read"):
        read_statements(tmp_path / "missing.csv")
