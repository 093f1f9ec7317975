"""Memos with line breaks stay in one CSV cell and never start a formula."""

import codecs
import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlmodel import Session, select
from typer.testing import CliRunner

from ingest.records import CustomerRecord, OrderRecord, ParsedStatement, StatementRecord
from models.db import make_engine, session_scope
from models.tables import StatementLine
from service import booking, master
from service.app import create_app
from service.auth import create_api_key
from service.booking import Part
from service.cli import app
from service.exports import csv_text, neutralise, write_csv
from service.imports import lines_for_keys, store_statements
from service.settings import Settings

BREAK_MEMOS = ["\r=1+1", "a\n=1+1", "\n@SUM(1)"]
FORMULA_CHARACTERS = ("=", "+", "-", "@")
# A bank account that a spreadsheet would run as a formula.
FORMULA_ACCOUNT = "=BANK-1"


def _read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _read_file(path: Path) -> list[list[str]]:
    # newline="" keeps a carriage return inside a cell as it was written.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle))


def _assert_no_formula_cell(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_CHARACTERS), row


def test_write_csv_quotes_line_breaks(tmp_path):
    rows = [
        {"line_ref": f"L{number}", "amount": "1.00", "memo": memo}
        for number, memo in enumerate(BREAK_MEMOS, start=1)
    ]
    out = tmp_path / "memos.csv"

    count = write_csv(rows, ("line_ref", "amount", "memo"), out)

    read = _read_file(out)
    assert count == 3
    assert len(read) == 4
    assert [row[2] for row in read[1:]] == ["'\r=1+1", "a\n=1+1", "'\n@SUM(1)"]
    _assert_no_formula_cell(read)


def test_write_csv_file_starts_with_bom(tmp_path):
    rows = [{"line_ref": "L1", "name": "恒达机械有限公司", "memo": "=1+1"}]
    out = tmp_path / "names.csv"

    write_csv(rows, ("line_ref", "name", "memo"), out)

    assert out.read_bytes() == (
        codecs.BOM_UTF8 + "line_ref,name,memo\r\nL1,恒达机械有限公司,'=1+1\r\n".encode()
    )


def test_csv_text_has_no_bom():
    text = csv_text([{"name": "恒达"}], ("name",))

    assert not text.startswith("\ufeff")


def test_csv_text_rows_end_in_crlf():
    text = csv_text([{"memo": "plain"}], ("memo",))

    assert text == "memo\r\nplain\r\n"


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    application = create_app(settings, engine=engine, review_page=False)
    with TestClient(application) as client:
        yield client


@pytest.fixture
def erp(engine) -> dict[str, str]:
    with session_scope(engine) as session:
        return {"X-API-Key": create_api_key(session, "erp", role="erp", actor="test")}


def test_review_tasks_csv_keeps_rows(client, erp):
    lines = [
        {
            "line_ref": f"R{number}",
            "booking_date": "2025-06-10",
            "amount": f"1{number}.00",
            "memo": memo,
            "counterparty_name": "Unknown payer",
        }
        for number, memo in enumerate(BREAK_MEMOS, start=1)
    ]
    matched = client.post("/v1/match", headers=erp, json={"lines": lines})

    response = client.get("/v1/exports/review-tasks.csv", headers=erp)

    assert matched.status_code == 200, matched.text
    assert response.status_code == 200, response.text
    read = _read_back(response.content.decode("utf-8-sig"))
    header = read[0]
    memos = {
        row[header.index("line_ref")]: row[header.index("memo")] for row in read[1:]
    }
    assert len(read) == 1 + len(BREAK_MEMOS)
    assert memos == {
        f"R{number}": neutralise(memo)
        for number, memo in enumerate(BREAK_MEMOS, start=1)
    }
    _assert_no_formula_cell(read)


@pytest.fixture
def cli_database(database_url, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CASHMATCH_DATABASE_URL", database_url)
    return database_url


def _stored_memos(database_url: str) -> dict[str, str]:
    engine = make_engine(database_url)
    with Session(engine) as session:
        lines = session.exec(select(StatementLine)).all()
        memos = {line.line_ref: line.memo for line in lines}
    engine.dispose()
    return memos


def _write_statement(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["line_ref", "booking_date", "amount", "currency", "memo", "bank_reference"]
        )
        for number, memo in enumerate(BREAK_MEMOS, start=1):
            writer.writerow(
                [f"L{number}", "2025-06-10", f"1{number}.00", "CNY", memo, f"B{number}"]
            )


def test_unmatched_report_csv_keeps_rows(cli_database, tmp_path):
    statement = tmp_path / "statement.csv"
    _write_statement(statement)
    out = tmp_path / "un.csv"
    runner = CliRunner()

    imported = runner.invoke(app, ["import", str(statement)])
    written = runner.invoke(app, ["report", "unmatched", "--out", str(out)])

    assert imported.exit_code == 0, imported.output
    assert written.exit_code == 0, written.output
    read = _read_file(out)
    header = read[0]
    memos = {
        row[header.index("line_ref")]: row[header.index("memo")] for row in read[1:]
    }
    stored = _stored_memos(cli_database)
    assert len(read) == 1 + len(BREAK_MEMOS)
    assert memos == {ref: neutralise(memo) for ref, memo in stored.items()}
    assert any("\n" in memo for memo in memos.values())
    _assert_no_formula_cell(read)


# Allocations of stored lines ---------------------------------------------------------


def _seed_allocations(engine) -> None:
    """Store P1 in review with a proposal, K1 confirmed and U1 without allocations."""
    with session_scope(engine) as session:
        master.upsert_customers(session, [CustomerRecord("C1", "恒达机械有限公司")])
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    "SO-1", "C1", date(2025, 6, 1), Decimal("300.00"), Decimal("300.00")
                )
            ],
        )
        records = [
            StatementRecord(
                line_ref=ref,
                booking_date=date(2025, 6, day),
                amount=Decimal(amount),
                currency="CNY",
                bank_id=ref,
            )
            for ref, day, amount in (
                ("P1", 10, "300.00"),
                ("K1", 11, "120.00"),
                ("U1", 12, "45.00"),
            )
        ]
        statement = ParsedStatement(
            file_name="statement.sta",
            format="mt940",
            lines=records,
            account=FORMULA_ACCOUNT,
            currency="CNY",
        )
        report = store_statements(
            session,
            [statement],
            Settings(),
            file_name="statement.sta",
            file_sha256="P1",
        )
        stored = lines_for_keys(session, report.line_keys)
        lines = {line.line_ref: line for line in stored}

        lines["P1"].status = "review"
        session.add(lines["P1"])
        booking.propose(
            session,
            lines["P1"],
            [Part("order", Decimal("300.00"), "C1", "SO-1")],
            confidence=0.7,
            decision="review",
            model_version=None,
        )
        booking.confirm(
            session,
            lines["K1"],
            [Part("balance", Decimal("120.00"), "C1")],
            actor="clerk-a",
        )


# line_ref, target, amount, allocation_status and account as the CSV has them.
EXPECTED_ALLOCATION_CELLS = [
    ("P1", "order", "300.00", "proposed", "'" + FORMULA_ACCOUNT),
    ("K1", "balance", "120.00", "confirmed", "'" + FORMULA_ACCOUNT),
    ("U1", "none", "45.00", "", "'" + FORMULA_ACCOUNT),
]


def _allocation_cells(rows: list[dict]) -> list[tuple]:
    return [
        (
            row["line_ref"],
            row["target"],
            row["amount"],
            row["allocation_status"],
            row["account"],
        )
        for row in rows
    ]


def test_allocations_csv_has_status_and_account(client, erp, engine):
    _seed_allocations(engine)

    response = client.get("/v1/exports/allocations.csv", headers=erp)

    assert response.status_code == 200, response.text
    read = _read_back(response.content.decode("utf-8-sig"))
    header = read[0]
    assert header[-2:] == ["allocation_status", "account"]
    rows = [dict(zip(header, row)) for row in read[1:]]
    assert _allocation_cells(rows) == EXPECTED_ALLOCATION_CELLS
    _assert_no_formula_cell(read)


def test_allocations_xlsx_has_status_and_account(client, erp, engine):
    _seed_allocations(engine)

    response = client.get("/v1/exports/allocations.xlsx", headers=erp)

    assert response.status_code == 200, response.text
    sheet = load_workbook(io.BytesIO(response.content)).active
    header = [cell.value for cell in sheet[1]]
    rows = [dict(zip(header, row)) for row in sheet.iter_rows(min_row=2)]
    assert [row["allocation_status"].value for row in rows] == [
        "proposed",
        "confirmed",
        None,
    ]
    assert [row["account"].value for row in rows] == [FORMULA_ACCOUNT] * 3
    assert [row["account"].data_type for row in rows] == ["s"] * 3
    assert [row["amount"].value for row in rows] == [300, 120, 45]
    assert [row["amount"].data_type for row in rows] == ["n"] * 3


def test_status_out_has_status_and_account(cli_database, tmp_path):
    engine = make_engine(cli_database)
    _seed_allocations(engine)
    engine.dispose()
    out = tmp_path / "allocations.csv"

    written = CliRunner().invoke(app, ["report", "status", "--out", str(out)])

    assert written.exit_code == 0, written.output
    read = _read_file(out)
    rows = [dict(zip(read[0], row)) for row in read[1:]]
    assert _allocation_cells(rows) == EXPECTED_ALLOCATION_CELLS
    _assert_no_formula_cell(read)
