"""The hard parsing and duplicate cases, each with its right values."""

from __future__ import annotations

import codecs
from decimal import Decimal

import pytest
from ingest_fixtures import (
    C01_MT940,
    C08_WECHAT,
    camt053,
    camt_entry,
    camt_tx,
    ofx_tx,
    ofx_v1,
)

from ingest import dedupe_keys, read_statements
from models.errors import ImportFormatError, StatementBalanceError

C02_MT940 = b""":20:STMT-B
:25:CN0012345678
:28C:2/1
:60F:C250201CNY640,00
:61:2502030203C187,35NTRFSO-8001//BREF-0100
:86:SO-8001
:61:2502040204RC187,35NTRFSO-8001//BREF-0101
:86:RETURN OF SO-8001
:62F:C250204CNY640,00
-
"""


def test_mt940_keeps_line_references():
    [statement] = read_statements(C01_MT940, file_name="c01.sta")

    first, second = statement.lines
    assert statement.statement_id == "STMT-A"
    assert statement.account == "CN0012345678"
    assert (first.amount, second.amount) == (Decimal("120.00"), Decimal("80.00"))
    assert (first.customer_reference, second.customer_reference) == (
        "ORD-5531", "ORD-5532")
    assert (first.bank_reference, second.bank_reference) == ("BREF-0001", "BREF-0002")
    assert (first.line_ref, second.line_ref) == ("BREF-0001", "BREF-0002")
    assert "ORD-5531" in first.memo
    assert "STMT-A" not in first.memo + first.line_ref
    assert statement.opening_balance + statement.total == statement.closing_balance


def test_mt940_reversal_of_credit_is_negative():
    [statement] = read_statements(C02_MT940, file_name="c02.sta")

    credit, reversal = statement.lines
    assert credit.amount == Decimal("187.35")
    assert not credit.is_reversal
    assert reversal.amount == Decimal("-187.35")
    assert reversal.is_reversal
    assert statement.closing_balance == Decimal("640.00")


def test_mt940_reversal_of_debit_is_positive():
    data = C02_MT940.replace(b"2502040204RC187,35", b"2502040204RD187,35").replace(
        b":62F:C250204CNY640,00", b":62F:C250204CNY1014,70")

    [statement] = read_statements(data, file_name="c02-rd.sta")

    assert statement.lines[1].amount == Decimal("187.35")
    assert statement.lines[1].is_reversal


def test_mt940_wrong_closing_balance_rejects_file():
    data = C02_MT940.replace(b":62F:C250204CNY640,00", b":62F:C250204CNY827,35")

    with pytest.raises(StatementBalanceError, match="closing balance is 827.35"):
        read_statements(data, file_name="c02-bad.sta")


def test_camt_batch_entry_splits_into_details():
    details = "<NtryDtls><Btch><NbOfTxs>2</NbOfTxs></Btch>" + camt_tx(
        "SO-7001", tx_amount="410.00") + camt_tx("SO-7002", amount="120.00") + \
        "</NtryDtls>"
    data = camt053(camt_entry("530.00", "BATCH-1", details=details),
                   closing="530.00")

    [statement] = read_statements(data, file_name="c03.xml")

    amounts = [line.amount for line in statement.lines]
    assert amounts == [Decimal("410.00"), Decimal("120.00")]
    assert [line.memo for line in statement.lines] == ["SO-7001", "SO-7002"]
    assert [line.line_ref for line in statement.lines] == ["BATCH-1", "BATCH-1#2"]


def test_camt_batch_not_adding_up_rejects_file():
    details = "<NtryDtls>" + camt_tx("SO-7001", tx_amount="400.00") + camt_tx(
        "SO-7002", amount="120.00") + "</NtryDtls>"
    data = camt053(camt_entry("530.00", "BATCH-1", details=details),
                   closing="530.00")

    with pytest.raises(ImportFormatError, match="entry BATCH-1 .*add up to 520.00"):
        read_statements(data, file_name="c03-bad.xml")


C04_ENTRIES = "".join(
    camt_entry(amount, f"E-{i}") for i, amount in
    enumerate(["75.00", "60.00", "25.00"], start=1)
)


def _summary(count: str, total: str) -> str:
    return (f"<TxsSummry><TtlNtries><NbOfNtries>{count}</NbOfNtries>"
            f"<Sum>{total}</Sum></TtlNtries></TxsSummry>")


def test_camt_summary_matches_entries():
    data = camt053(C04_ENTRIES, summary=_summary("3", "160.00"), closing="160.00")

    [statement] = read_statements(data, file_name="c04.xml")

    assert len(statement.lines) == 3
    assert statement.total == Decimal("160.00")


@pytest.mark.parametrize(
    ("count", "total", "message"),
    [
        pytest.param("4", "160.00", "NbOfNtries 4 but the file holds 3", id="count"),
        pytest.param("3", "170.00", "Sum 170.00 but the file holds a sum of 160.00",
                     id="sum"),
    ],
)
def test_camt_summary_disagreeing_rejects_file(count, total, message):
    data = camt053(C04_ENTRIES, summary=_summary(count, total), closing="160.00")

    with pytest.raises(ImportFormatError, match=message):
        read_statements(data, file_name="c04-bad.xml")


def test_camt_balances_disagreeing_reject_file():
    data = camt053(C04_ENTRIES, summary=_summary("3", "160.00"), closing="150.00")

    with pytest.raises(StatementBalanceError):
        read_statements(data, file_name="c04-balance.xml")


def test_csv_german_number_format():
    data = (
        "Buchungstag;Verwendungszweck;Betrag\n"
        "02.05.2025;Miete Lager;-7.000\n"
        "03.05.2025;SO-5501;1.250,50\n"
        "04.05.2025;Gebuehr;-12,5\n"
    ).encode("cp1252")

    [statement] = read_statements(data, file_name="c05.csv")

    amounts = [line.amount for line in statement.lines]
    assert amounts == [Decimal("-7000.00"), Decimal("1250.50"), Decimal("-12.50")]


def test_csv_dot_decimal_with_one_digit():
    data = b"Date,Amount,Memo\n2025-05-02,-84.3,fee\n2025-05-03,1200.00,SO-1\n"

    [statement] = read_statements(data, file_name="c05-dot.csv")

    assert statement.lines[0].amount == Decimal("-84.30")


def test_csv_date_order_from_unambiguous_row():
    data = (b"Date,Amount,Memo\n09/04/2025,10.00,a\n23/04/2025,20.00,b\n"
            b"02/05/2025,30.00,c\n")

    [statement] = read_statements(data, file_name="c06.csv")

    dates = [line.booking_date.isoformat() for line in statement.lines]
    assert dates == ["2025-04-09", "2025-04-23", "2025-05-02"]


def test_csv_date_fitting_no_order_rejects_file():
    data = (b"Date,Amount,Memo\n09/04/2025,10.00,a\n23/04/2025,20.00,b\n"
            b"31/02/2025,30.00,c\n")

    with pytest.raises(ImportFormatError, match=r"c06-bad.csv:4, field date") as info:
        read_statements(data, file_name="c06-bad.csv")
    assert "1970" not in str(info.value)


def test_ofx_declared_charset_lies():
    body = ofx_v1(ofx_tx("250.00", "T-1", name="Ágota Szerviz Kft", memo="SO-7701"))
    data = body.encode("utf-8")

    [statement] = read_statements(data, file_name="c07.ofx")

    assert statement.lines[0].counterparty_name == "Ágota Szerviz Kft"
    assert any("declares encoding 1252" in note for note in statement.notes)


def test_ofx_charset_none_with_ascii_body():
    data = ofx_v1(ofx_tx("12.00", "T-2", name="Plain Payee"), charset="NONE").encode()

    [statement] = read_statements(data, file_name="c07-none.ofx")

    assert statement.lines[0].counterparty_name == "Plain Payee"


def test_ofx_undecodable_names_encoding_and_offset():
    data = ofx_v1(ofx_tx("12.00", "T-3", name="X")).encode() .replace(
        b"<NAME>X", b"<NAME>\x81\x8d")

    with pytest.raises(ImportFormatError, match="offset [0-9]+ are not valid") as info:
        read_statements(data, file_name="c07-bad.ofx")
    assert "unsupported" not in str(info.value)




def test_wechat_gb18030_bill():
    data = C08_WECHAT.encode("gb18030")
    assert not data.startswith(codecs.BOM_UTF8)

    [statement] = read_statements(data, file_name="c08.csv")

    first, refund, unknown = statement.lines
    assert statement.encoding == "gb18030"
    assert statement.profile == "wechat"
    assert (first.amount, refund.amount) == (Decimal("120.00"), Decimal("38.00"))
    assert first.memo == "SO-1201"
    assert first.line_ref == "1000050001"
    assert first.channel == "wechat"
    assert not first.unknown_type
    assert not refund.unknown_type
    assert unknown.unknown_type
    assert unknown.amount == Decimal("5.00")


def test_wechat_bad_amount_rejects_unless_skipped():
    bad = C08_WECHAT.replace("¥38.00", "¥3八.00").encode("gb18030")

    with pytest.raises(ImportFormatError, match="c08-bad.csv:8, field amount"):
        read_statements(bad, file_name="c08-bad.csv")
    [statement] = read_statements(bad, file_name="c08-bad.csv", skip_bad_lines=True)
    assert len(statement.lines) == 2
    assert statement.skipped[0].line == 8


def test_wechat_amount_beyond_cents_says_so():
    bad = C08_WECHAT.replace("¥38.00", "¥38.005").encode("gb18030")

    with pytest.raises(ImportFormatError) as raised:
        read_statements(bad, file_name="c08-cents.csv")

    message = str(raised.value)
    assert "c08-cents.csv:8, field amount" in message
    assert "non-zero digits beyond the cents" in message


def test_csv_byte_order_mark_and_crlf():
    data = codecs.BOM_UTF8 + b"Date,Amount,Memo\r\n03/07/2025,250.00,SO-9301\r\n"

    [statement] = read_statements(data, file_name="c09.csv")

    [line] = statement.lines
    assert line.amount == Decimal("250.00")
    assert line.memo == "SO-9301"
    assert statement.encoding == "utf-8"


CANONICAL_HEADER = ("line_ref,booking_date,amount,currency,counterparty_name,"
                    "counterparty_account,memo,bank_reference\n")


def test_dedupe_same_amount_different_days():
    march = CANONICAL_HEADER + ",2025-03-28,18.00,GBP,,,WRENFIELD CLUB SUBS,\n"
    april = CANONICAL_HEADER + (",2025-04-02,18.00,GBP,,,WRENFIELD CLUB SUBS,\n" * 2)

    [first] = read_statements(march.encode(), file_name="march.csv")
    [second] = read_statements(april.encode(), file_name="april.csv")
    [again] = read_statements(april.encode(), file_name="april.csv")

    stored = set(dedupe_keys(first, account="A1"))
    new = dedupe_keys(second, account="A1")
    stored |= set(new)
    assert len(stored) == 3
    repeated = dedupe_keys(again, account="A1")
    assert sum(key in stored for key in repeated) == 2


def test_ofx_shared_transaction_id():
    transactions = ofx_tx("300.00", "FIT-9401", name="Hangzhou Mingda", memo="SO-9401") \
        + ofx_tx("-4.50", "FIT-9401", name="BANK", memo="FEE", kind="FEE")
    data = ofx_v1(transactions).encode()

    [statement] = read_statements(data, file_name="c11.ofx")
    [again] = read_statements(data, file_name="c11.ofx")

    assert [line.line_ref for line in statement.lines] == ["FIT-9401", "FIT-9401#2"]
    assert statement.total == Decimal("295.50")
    keys = dedupe_keys(statement, account="9988776655")
    assert len(set(keys)) == 2
    assert dedupe_keys(again, account="9988776655") == keys
    assert "FIT-9401" not in keys
    assert dedupe_keys(statement, account="other") != keys
