"""MT940, camt and OFX details beyond the hard cases."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date
from decimal import Decimal

import pytest
from ingest_fixtures import camt053, camt_entry, ofx_tx, ofx_v1

from ingest import read_statements
from models.errors import ImportFormatError

MT940_TWO = b"""\x01:20:ST-1
:25:PL29114010810000267002001002
:28C:1/1
:60F:C250301PLN100,00
:61:2503010301C50,00NTRFNONREF//MB0001
:86:TYT.: ZAP\x9dATA FAKTURA FV-12/2025
:61:2503010301D10,00NZZZNONREF
:86:OPLATA
:62F:C250301PLN140,00
-
:20:ST-2
:25:PL29114010810000267002001003
:28C:2/1
:60F:C250302PLN0,00
:62F:C250302PLN0,00
-\x03"""


def test_mt940_framing_bytes_and_cp852():
    [first, second] = read_statements(MT940_TWO, file_name="mbank.sta")

    paid, fee = first.lines
    assert first.account == "PL29114010810000267002001002"
    assert second.account == "PL29114010810000267002001003"
    assert first.encoding == "cp852"
    assert "ZAPŁATA" in paid.memo
    assert paid.line_ref == "MB0001"
    assert fee.line_ref == "mbank.sta:2"
    assert fee.unknown_type
    assert not paid.unknown_type
    assert second.lines == []


def test_mt940_structured_details_give_counterparty():
    data = b""":20:ST-9
:25:NL71RABO0123456789
:28C:1
:60F:C250301EUR0,00
:61:250301C25,00N102NONREF
NL70ABNA0987654321
:86:/EREF/SO-9901/BENM//NAME/ACME TRADING BV/REMI/ORDER SO-9901
:62F:C250301EUR25,00
-
"""
    [statement] = read_statements(data, file_name="rabo.sta")

    [line] = statement.lines
    assert line.counterparty_name == "ACME TRADING BV"
    assert line.counterparty_account == "NL70ABNA0987654321"
    assert line.memo == "ORDER SO-9901"


def test_mt940_garbage_is_format_error():
    with pytest.raises(ImportFormatError):
        read_statements(b":20:X\n:25:Y\n:61:garbage\n:62F:nothing\n", file_name="x.sta")


def test_camt_zip_holds_several_statements():
    first = camt053(camt_entry("10.00", "A-1"), closing="10.00", account="ACC-A")
    second = camt053(camt_entry("20.00", "B-1"), closing="20.00", account="ACC-B")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("day-1.xml", first)
        archive.writestr("day-2.xml", second)

    statements = read_statements(buffer.getvalue(), file_name="camt.zip")

    assert [s.account for s in statements] == ["ACC-A", "ACC-B"]
    assert [s.total for s in statements] == [Decimal("10.00"), Decimal("20.00")]


def test_camt_date_time_converted_to_account_zone():
    entry = camt_entry("10.00", "A-1", booked="<DtTm>2025-06-10T20:30:00+00:00</DtTm>")

    [statement] = read_statements(camt053(entry, closing="10.00"), file_name="x.xml")
    [utc] = read_statements(camt053(entry, closing="10.00"), file_name="x.xml",
                            timezone="UTC")

    assert statement.lines[0].booking_date == date(2025, 6, 11)
    assert utc.lines[0].booking_date == date(2025, 6, 10)


@pytest.mark.parametrize("zone", ["Europe", "Mars/Olympus", "../etc"])
def test_unknown_time_zone_is_a_format_error(zone):
    entry = camt_entry("10.00", "A-1")

    with pytest.raises(ImportFormatError, match="unknown time zone"):
        read_statements(camt053(entry, closing="10.00"), file_name="x.xml", timezone=zone)


def test_camt_debit_is_negative_with_creditor():
    entry = camt_entry("42.00", "D-1", mark="DBIT")

    [statement] = read_statements(camt053(entry, closing="-42.00"), file_name="x.xml")

    assert statement.lines[0].amount == Decimal("-42.00")


def test_camt_forbids_entities():
    data = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
            b"<BkToCstmrStmt>&a;</BkToCstmrStmt></Document>")

    with pytest.raises(ImportFormatError, match="forbidden"):
        read_statements(data, file_name="x.xml")


def test_ofx_offset_converted_to_account_zone():
    data = ofx_v1(ofx_tx("10.00", "T-1", posted="20250612203000[-5:EST]")).encode()

    [statement] = read_statements(data, file_name="x.ofx")

    assert statement.lines[0].booking_date == date(2025, 6, 13)


def test_ofx_unknown_type_is_flagged_not_rejected():
    data = ofx_v1(ofx_tx("10.00", "T-1", kind="GIFT")).encode()

    [statement] = read_statements(data, file_name="x.ofx")

    assert statement.lines[0].unknown_type
    assert statement.account == "9988776655"


# Closing dates ------------------------------------------------------------------

MT940_CLOSING = """:20:ST-5
:25:CN0012345678
:28C:5/1
{opening}
:61:2503280328C200,00NTRFSO-1//B-1
:86:PAYMENT SO-1
{closing}
-
"""


@pytest.mark.parametrize(
    ("opening", "closing"),
    [
        pytest.param(":60F:C250327CNY1000,00", ":62F:C250331CNY1200,00", id="62F"),
        pytest.param(":60M:C250327CNY1000,00", ":62M:C250331CNY1200,00", id="62M"),
        pytest.param(":60F:C250327CNY1000,00",
                     ":62M:C250329CNY1200,00\n:62F:C250331CNY1200,00",
                     id="62F-over-62M"),
    ],
)
def test_mt940_closing_date_from_balance(opening, closing):
    data = MT940_CLOSING.format(opening=opening, closing=closing).encode()

    [statement] = read_statements(data, file_name="x.sta")

    assert statement.lines[0].booking_date == date(2025, 3, 28)
    assert statement.closing_balance == Decimal("1200.00")
    assert statement.closing_date == date(2025, 3, 31)


def test_camt_closing_date_from_clbd():
    data = camt053(camt_entry("10.00", "A-1"), closing="10.00")

    [statement] = read_statements(data, file_name="x.xml")

    assert statement.lines[0].booking_date == date(2025, 6, 10)
    assert statement.closing_date == date(2025, 6, 30)


def test_camt_closing_date_time_in_account_zone():
    data = camt053(camt_entry("10.00", "A-1"), closing="10.00").replace(
        b"<Dt><Dt>2025-06-30</Dt></Dt>",
        b"<Dt><DtTm>2025-06-30T20:00:00+00:00</DtTm></Dt>")

    [statement] = read_statements(data, file_name="x.xml")
    [utc] = read_statements(data, file_name="x.xml", timezone="UTC")

    assert statement.closing_date == date(2025, 7, 1)
    assert utc.closing_date == date(2025, 6, 30)


def test_camt_without_clbd_has_no_closing_date():
    data = camt053(camt_entry("10.00", "A-1"), closing="10.00")
    data = re.sub(rb"<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd>.*?</Bal>", b"", data,
                  flags=re.S)

    [statement] = read_statements(data, file_name="x.xml")

    assert statement.opening_balance == Decimal("0.00")
    assert statement.closing_balance is None
    assert statement.closing_date is None


# Name and memo are filled because an empty SGML leaf takes the elements
# after it as children, and LEDGERBAL would end up inside the transaction.
OFX_PAYMENT = ofx_tx("10.00", "T-1", name="ACME", memo="SO-1")


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        pytest.param("20250630", date(2025, 6, 30), id="date"),
        pytest.param("20250630120000.000", date(2025, 6, 30), id="date-time"),
        pytest.param("20250630200000[-5:EST]", date(2025, 7, 1), id="offset"),
        pytest.param("2025-06-30", None, id="invalid"),
        pytest.param("", None, id="empty"),
    ],
)
def test_ofx_closing_date_from_ledgerbal(as_of, expected):
    data = ofx_v1(OFX_PAYMENT).replace(
        "<DTASOF>20250630", f"<DTASOF>{as_of}").encode()

    [statement] = read_statements(data, file_name="x.ofx")

    assert statement.closing_balance == Decimal("1000.00")
    assert statement.closing_date == expected


def test_ofx_invalid_closing_date_noted():
    data = ofx_v1(OFX_PAYMENT).replace(
        "<DTASOF>20250630", "<DTASOF>2025-06-30").encode()

    [statement] = read_statements(data, file_name="x.ofx")

    assert any("DTASOF '2025-06-30' is not a date" in note
               for note in statement.notes)


def test_ofx_without_ledgerbal_has_no_closing_date():
    data = re.sub(r"<LEDGERBAL>.*?</LEDGERBAL>", "", ofx_v1(OFX_PAYMENT))

    [statement] = read_statements(data.encode(), file_name="x.ofx")

    assert statement.closing_balance is None
    assert statement.closing_date is None
