"""`cashmatch report` and `cashmatch ledger` on a SQLite file."""

import codecs
import csv
import io
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from service.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CASHMATCH_APPROVAL_LIMIT", "100.00")
    monkeypatch.delenv("CASHMATCH_DATABASE_URL", raising=False)
    return tmp_path


def _run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _seed(tmp_path: Path) -> None:
    (tmp_path / "customers.csv").write_text(
        "customer_id,name,aliases,bank_accounts\nC1,恒达机械有限公司,,6222001\n",
        encoding="utf-8",
    )
    (tmp_path / "orders.csv").write_text(
        "order_id,customer_id,order_date,amount,open_amount,currency,"
        "deposit_amount,status\nSO-1,C1,2025-06-01,300.00,300.00,CNY,,open\n",
        encoding="utf-8",
    )
    (tmp_path / "statement.csv").write_text(
        "line_ref,booking_date,amount,currency,counterparty_name,"
        "counterparty_account,memo,bank_reference\n"
        "L1,2025-06-10,800.00,CNY,恒达机械有限公司,6222001,预付款,B1\n",
        encoding="utf-8",
    )
    _run("load", str(tmp_path / "customers.csv"), str(tmp_path / "orders.csv"))
    _run("import", str(tmp_path / "statement.csv"))


def _book_to_balance() -> None:
    from sqlmodel import Session, select

    from models.db import make_engine
    from models.tables import StatementLine
    from service import booking
    from service.booking import Part
    from service.settings import Settings

    engine = make_engine(Settings().database_url)
    with Session(engine) as session:
        line = session.exec(select(StatementLine)).one()
        booking.confirm(
            session, line, [Part("balance", line.amount, "C1")], actor="clerk-a"
        )
        session.commit()
    engine.dispose()


def test_reports_cli_balances_to_xlsx(cli_env):
    _seed(cli_env)
    _book_to_balance()
    out = cli_env / "balances.xlsx"

    printed = _run("report", "balances", "--out", str(out), "--as-of", "2025-09-30")

    assert f"wrote 1 balances rows to {out}" in printed
    sheet = load_workbook(out).active
    assert [cell.value for cell in sheet[2]][:3] == ["C1", "恒达机械有限公司", 800]


def test_reports_cli_balances_csv_starts_with_bom(cli_env):
    _seed(cli_env)
    _book_to_balance()
    out = cli_env / "bal.csv"

    _run("report", "balances", "--out", str(out), "--as-of", "2025-09-30")

    data = out.read_bytes()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert data.startswith(codecs.BOM_UTF8)
    assert data.count(b"\r\n") == 2
    assert data.count(b"\n") == 2
    assert rows[0][0] == "\ufeffcustomer_id"
    assert rows[1][:3] == ["C1", "恒达机械有限公司", "800.00"]


def test_reports_cli_reminders_printed(cli_env):
    _seed(cli_env)
    _book_to_balance()

    printed = _run("report", "reminders", "--as-of", "2025-09-30")

    assert "kind,customer_id,name,amount,since,age_days" in printed
    assert "unused_balance,C1,恒达机械有限公司,800.00,2025-06-10,112" in printed


def test_reports_cli_status_unchanged(cli_env):
    _seed(cli_env)

    printed = _run("report")

    assert "1 statement lines" in printed


def test_reports_cli_ledger_apply_and_approve(cli_env):
    _seed(cli_env)
    _book_to_balance()
    for user in ("clerk-a", "lead-b"):
        _run("users", "add", user, "--role", "clerk", "--password", "long-enough-1")

    applied = _run("ledger", "apply", "C1", "300.00", "--order", "SO-1")
    asked = _run("ledger", "write-off", "C1", "200.00", "--actor", "clerk-a")
    own = CliRunner().invoke(app, ["ledger", "approve", "1", "--actor", "clerk-a"])
    approved = _run("ledger", "approve", "1", "--actor", "lead-b")
    shown = _run("ledger", "show", "C1")

    assert "applied 300.00 to order SO-1" in applied
    assert "C1's balance is now 500.00" in applied
    assert "is pending; another user must approve it" in asked
    assert own.exit_code == 1
    assert "another user must approve it" in own.output
    assert "write_off of 200.00 for C1 is approved" in approved
    assert "balance 300.00" in shown


def test_reports_cli_close_month(cli_env):
    closed = _run("ledger", "close-month", "2020-01", "--actor", "lead")
    again = CliRunner().invoke(app, ["ledger", "close-month", "2020-01"])
    months = _run("ledger", "months")

    assert "month 2020-01 closed by lead" in closed
    assert again.exit_code == 1
    assert "closed already" in again.output
    assert "2020-01  closed by lead" in months
