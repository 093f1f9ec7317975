from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CASHMATCH_DATABASE_URL", raising=False)
    return tmp_path


def test_import_twice_adds_nothing(cli_env):
    runner = CliRunner()
    statement = str(EXAMPLES / "mt940-march" / "statement.sta")

    first = runner.invoke(app, ["import", statement])
    second = runner.invoke(app, ["import", statement])

    assert first.exit_code == 0, first.output
    assert "6 new, 0 already imported" in first.output
    assert second.exit_code == 0, second.output
    assert "0 new, 6 already imported" in second.output


def test_import_unreadable_file_fails_cleanly(cli_env):
    bad = cli_env / "statement.csv"
    bad.write_text("line_ref,booking_date,amount\nL1,2025-13-45,12.00\n")

    result = CliRunner().invoke(app, ["import", str(bad)])

    assert result.exit_code == 1
    assert "statement.csv" in result.output
    assert "nothing was imported" in result.output


def test_load_then_match_books_lines(cli_env):
    runner = CliRunner()
    folder = EXAMPLES / "mt940-march"

    loaded = runner.invoke(app, ["load", str(folder)])
    runner.invoke(app, ["import", str(folder / "statement.sta")])
    matched = runner.invoke(app, ["match"])

    assert loaded.exit_code == 0, loaded.output
    assert "customers: 4 created" in loaded.output
    assert matched.exit_code == 0, matched.output
    assert "matched 6 lines" in matched.output


def test_match_dry_run_says_nothing_stored(cli_env):
    runner = CliRunner()
    folder = EXAMPLES / "mt940-march"
    runner.invoke(app, ["load", str(folder)])
    runner.invoke(app, ["import", str(folder / "statement.sta")])

    dry = runner.invoke(app, ["match", "--dry-run"])
    real = runner.invoke(app, ["match"])

    assert dry.exit_code == 0, dry.output
    assert "matched 6 lines" in dry.output
    assert "(dry run, nothing stored)" in dry.output
    assert "matched 6 lines" in real.output
    assert "(booked and stored)" in real.output


def test_load_failure_prints_no_counts(cli_env):
    folder = cli_env / "erp"
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "customer_id,name\nC1,恒达机械有限公司\n", encoding="utf-8"
    )
    (folder / "orders.csv").write_text(
        "order_id,customer_id,order_date,amount,open_amount\n"
        "SO-1,ZZ,2025-06-01,100.00,100.00\n",
        encoding="utf-8",
    )

    result = CliRunner().invoke(app, ["load", str(folder)])

    assert result.exit_code == 1
    printed = result.output.splitlines()
    assert not any(line.startswith("customers: ") for line in printed)
    assert f"{folder / 'orders.csv'}: order SO-1 names customer 'ZZ'" in result.output
    assert "nothing was loaded" in result.output


def test_users_add_then_sign_in(cli_env):
    from sqlmodel import Session

    from models.db import make_engine
    from service.auth import sign_in

    result = CliRunner().invoke(
        app, ["users", "add", "wang.li", "--role", "clerk", "--password", "s3cret-pass"]
    )

    assert result.exit_code == 0, result.output
    engine = make_engine(f"sqlite:///{cli_env / 'data' / 'cashmatch.db'}")
    with Session(engine) as session:
        assert sign_in(session, "wang.li", "s3cret-pass") is not None
        assert sign_in(session, "wang.li", "wrong-pass") is None


def test_users_add_short_password_fails(cli_env):
    result = CliRunner().invoke(
        app, ["users", "add", "wang.li", "--password", "short"]
    )

    assert result.exit_code == 1
    assert "shorter than 8 characters" in result.output


def test_load_customer_with_two_spellings_of_one_account(cli_env):
    folder = cli_env / "master"
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "customer_id,name,aliases,bank_accounts\n"
        "C1,恒达机械有限公司,,6222 0200 1234 4567|6222-0200-1234-4567\n",
        encoding="utf-8",
    )

    result = CliRunner().invoke(app, ["load", str(folder)])

    assert result.exit_code == 0, result.output
    assert "customers: 1 created" in result.output


def test_explain_shows_status_before_and_after_void(cli_env):
    runner = CliRunner()
    folder = EXAMPLES / "mt940-march"
    runner.invoke(app, ["load", str(folder)])
    runner.invoke(app, ["import", str(folder / "statement.sta")])
    runner.invoke(app, ["match"])

    booked = runner.invoke(app, ["explain", "HB0303001"])
    runner.invoke(app, ["void", "1", "--reason", "wrong account"])
    voided = runner.invoke(app, ["explain", "HB0303001"])

    assert booked.exit_code == 0, booked.output
    assert "status allocated  decision auto" in booked.output
    assert "1. score" in booked.output
    assert "SO-25031 12800.00" in booked.output
    assert voided.exit_code == 0, voided.output
    assert "status voided" in voided.output
