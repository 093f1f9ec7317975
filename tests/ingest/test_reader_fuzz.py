"""Random and mutated files: the only failure any reader may raise is
ImportFormatError, and each file is read within a bounded time."""

from __future__ import annotations

import io

import openpyxl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_fixtures import (
    C01_MT940,
    C08_WECHAT,
    camt053,
    camt_entry,
    camt_tx,
    ofx_tx,
    ofx_v1,
)

from ingest import list_profiles, read_statements
from models.errors import ImportFormatError

CANONICAL = (b"line_ref,booking_date,amount,currency,counterparty_name,"
             b"counterparty_account,memo,bank_reference\n"
             b"L-1,2025-06-03,1200.00,CNY,Yuanjing,6222,SO-1,B-1\n")


def _xlsx() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["交易时间", "交易类型", "交易对方", "商品", "收/支", "金额(元)",
                  "支付方式", "当前状态", "交易单号", "商户单号", "备注"])
    sheet.append(["2025-06-02 10:00:00", "转账", "远景", "/", "收入", "¥8.00",
                  "/", "已收钱", "42\t", "SO-1\t", "/"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


SEEDS = [
    C01_MT940,
    C08_WECHAT.encode("gb18030"),
    CANONICAL,
    camt053(camt_entry("530.00", "B-1", details="<NtryDtls>" + camt_tx(
        "SO-1", amount="410.00") + camt_tx("SO-2", amount="120.00") + "</NtryDtls>"),
        closing="530.00"),
    ofx_v1(ofx_tx("300.00", "F-1", memo="SO-9") + ofx_tx("-4.50", "F-1")).encode(),
    b"Buchungstag;Verwendungszweck;Betrag\n02.05.2025;SO-1;1.250,50\n",
    _xlsx(),
]
PROFILES = [None, *list_profiles()]
FUZZ = settings(max_examples=150, deadline=3000,
                suppress_health_check=[HealthCheck.too_slow])


def _read(data: bytes, profile: str | None = None) -> None:
    try:
        read_statements(data, file_name="fuzz.dat", profile=profile)
    except ImportFormatError as exc:
        # This text comes only from the last-resort handler around the
        # readers, so finding it means a reader crashed on the input.
        assert "but cannot be read (" not in str(exc)


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "cut"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[position:position + draw(st.integers(1, 16))]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[position:]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data):
    _read(data)


@FUZZ
@given(mutated())
def test_fuzz_mutated_files(data):
    _read(data)


@FUZZ
@given(mutated(), st.sampled_from(PROFILES))
def test_fuzz_mutated_files_with_profiles(data, profile):
    _read(data, profile)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list(",;\t\n\"'-.:/0123456789¥合计交易日期金额Date")),
               max_size=400))
def test_fuzz_table_like_text(text):
    _read(("Date,Amount,Memo\n" + text).encode())
