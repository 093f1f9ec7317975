"""`cashmatch report`: output formats, report names, closing day and log noise."""

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from service.cli import app
from service.reports import ALL_REPORT_NAMES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FORMULA_MEMO = '=HYPERLINK("http://x.invalid","open")'


@pytest.fixture
def cli_database(database_url, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CASHMATCH_DATABASE_URL", database_url)
    return database_url


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _run(*args: str) -> str:
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def _import_statement(folder: Path) -> None:
    statement = folder / "statement.csv"
    with statement.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "line_ref",
                "booking_date",
                "amount",
                "currency",
                "counterparty_name",
                "counterparty_account",
                "memo",
                "bank_reference",
            ]
        )
        writer.writerow(
            [
                "L1",
                "2025-06-10",
                "800.50",
                "CNY",
                "Payer One",
                "6222001",
                FORMULA_MEMO,
                "B1",
            ]
        )
        writer.writerow(
            [
                "L2",
                "2025-06-11",
                "12.00",
                "CNY",
                "Payer Two",
                "6222002",
                "plain memo",
                "B2",
            ]
        )
    _run("import", str(statement))


def _sheet_rows(path: Path) -> tuple[list[str], list[tuple]]:
    sheet = load_workbook(path).active
    header = [cell.value for cell in sheet[1]]
    return header, [tuple(row) for row in sheet.iter_rows(min_row=2)]


def test_status_out_xlsx_is_workbook(cli_database, tmp_path):
    _import_statement(tmp_path)
    out = tmp_path / "st.xlsx"

    printed = _run("report", "status", "--out", str(out))

    assert f"wrote 2 allocation rows to {out}" in printed
    header, rows = _sheet_rows(out)
    line_ref = header.index("line_ref")
    amount = header.index("amount")
    assert [row[line_ref].value for row in rows] == ["L1", "L2"]
    assert [row[line_ref].data_type for row in rows] == ["s", "s"]
    assert [row[amount].value for row in rows] == [Decimal("800.5"), 12]
    assert [row[amount].data_type for row in rows] == ["n", "n"]


def test_unmatched_out_xlsx_memo_is_text(cli_database, tmp_path):
    _import_statement(tmp_path)
    out = tmp_path / "un.xlsx"

    _run("report", "unmatched", "--out", str(out))

    header, rows = _sheet_rows(out)
    memo = header.index("memo")
    amount = header.index("amount")
    assert rows[0][memo].value == FORMULA_MEMO
    assert rows[0][memo].data_type == "s"
    assert rows[0][amount].value == Decimal("800.5")
    assert rows[0][amount].data_type == "n"


def test_status_out_csv_is_text(cli_database, tmp_path):
    _import_statement(tmp_path)
    out = tmp_path / "st.csv"

    _run("report", "status", "--out", str(out))

    first = out.read_text(encoding="utf-8-sig").splitlines()[0]
    assert first.startswith("line_ref,customer_id,order_id,target,amount")


@pytest.mark.parametrize("name", ["status", "balances"])
@pytest.mark.parametrize("file_name", ["st.txt", "st", "st.xls"])
def test_report_out_other_suffix_rejected(cli_database, tmp_path, name, file_name):
    out = tmp_path / file_name

    result = _invoke("report", name, "--out", str(out))

    assert result.exit_code == 1
    assert f"cannot write {out}" in result.output
    assert "is not one of .csv, .xlsx" in result.output
    assert not out.exists()


def test_unknown_report_lists_every_name(cli_database):
    result = _invoke("report", "nosuch")

    assert result.exit_code == 1
    assert (
        "report 'nosuch' not found; use one of status, balances, unmatched, "
        "anomalies, customer-anomalies, reminders, reconciliation" in result.output
    )
    assert ALL_REPORT_NAMES[0] == "status"


def test_reconciliation_closing_detail_names_balance_date(cli_database):
    _run("import", str(EXAMPLES / "mt940-march" / "statement.sta"))

    printed = _run(
        "report",
        "reconciliation",
        "--account",
        "CN4410012345678901",
        "--month",
        "2025-03",
    )

    assert "bank,closing_balance,104935.20,,closing balance dated 2025-03-31" in printed


def _import_money_out(folder: Path) -> None:
    """Import L1 and L2 (money in) with O1, a salary paid before them."""
    _import_statement(folder)
    statement = folder / "salary.csv"
    with statement.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line_ref", "booking_date", "amount", "currency", "memo"])
        writer.writerow(["O1", "2025-06-05", "-300.25", "CNY", "工资"])
    _run("import", str(statement))


def test_reconciliation_cli_money_out_own_place(cli_database, tmp_path):
    _import_money_out(tmp_path)

    printed = _run(
        "report", "reconciliation", "--account", "default", "--month", "2025-06"
    )

    lines = printed.splitlines()
    assert "bank,lines_total,512.25,," in lines
    assert "places,unmatched,812.50,," in lines
    assert "places,unmatched_out,-300.25,," in lines


def test_unmatched_cli_money_out_last(cli_database, tmp_path):
    _import_money_out(tmp_path)

    printed = _run("report", "unmatched", "--as-of", "2025-06-30")

    rows = list(csv.DictReader(printed.splitlines()))
    assert [(r["line_ref"], r["direction"], r["amount"]) for r in rows] == [
        ("L1", "money_in", "800.50"),
        ("L2", "money_in", "12.00"),
        ("O1", "money_out", "-300.25"),
    ]


def test_migration_log_hidden_by_default(cli_database):
    quiet = _run("report")
    verbose = _run("--verbose", "report")

    assert "is migrated" not in quiet
    assert "is migrated" in verbose
    assert "statement lines" in quiet


def test_verbose_option_has_help():
    printed = _run("--help")

    assert "Log debug messages to stderr too" in printed
