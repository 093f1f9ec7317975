"""`cashmatch ledger` requests and approvals act only as known users."""

from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.db import make_engine
from models.tables import LedgerRequest, StatementLine
from service import booking, ledger
from service.booking import Part
from service.cli import app


@pytest.fixture
def cli_database(database_url, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CASHMATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("CASHMATCH_APPROVAL_LIMIT", "100.00")
    _seed(tmp_path)
    _book_to_balance(database_url)
    for name, role in (("clerk-a", "clerk"), ("lead-b", "admin"), ("ana", "analyst")):
        _run("users", "add", name, "--role", role, "--password", "long-enough-1")
    return database_url


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _fail(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 1, result.output
    return result.output


def _seed(folder: Path) -> None:
    (folder / "customers.csv").write_text(
        "customer_id,name,aliases,bank_accounts\nC1,Hengda Machinery,,6222001\n",
        encoding="utf-8",
    )
    (folder / "statement.csv").write_text(
        "line_ref,booking_date,amount,currency,counterparty_name,"
        "counterparty_account,memo,bank_reference\n"
        "L1,2025-06-10,800.00,CNY,Hengda Machinery,6222001,advance,B1\n",
        encoding="utf-8",
    )
    _run("load", str(folder / "customers.csv"))
    _run("import", str(folder / "statement.csv"))


def _book_to_balance(database_url: str) -> None:
    engine = make_engine(database_url)
    with Session(engine) as session:
        line = session.exec(select(StatementLine)).one()
        booking.confirm(
            session, line, [Part("balance", line.amount, "C1")], actor="clerk-a"
        )
        session.commit()
    engine.dispose()


def _state(database_url: str) -> tuple[list[tuple[str, str, str]], Decimal]:
    engine = make_engine(database_url)
    with Session(engine) as session:
        requests = session.exec(select(LedgerRequest).order_by(LedgerRequest.id)).all()
        found = [(r.status, r.requested_by, r.decided_by or "") for r in requests]
        balance = ledger.balance(session, "C1")
    engine.dispose()
    return found, balance


def test_approve_by_unknown_user_rejected(cli_database):
    _run("ledger", "write-off", "C1", "200.00", "--actor", "clerk-a")

    output = _fail("ledger", "approve", "1", "--actor", "totally-made-up")

    assert "user 'totally-made-up' not found" in output
    assert _state(cli_database) == ([("pending", "clerk-a", "")], Decimal("800.00"))


def test_approve_own_request_rejected(cli_database):
    _run("ledger", "write-off", "C1", "200.00", "--actor", "clerk-a")

    output = _fail("ledger", "approve", "1", "--actor", "clerk-a")

    assert "another user must approve it" in output
    assert _state(cli_database) == ([("pending", "clerk-a", "")], Decimal("800.00"))


def test_approve_by_second_user_books(cli_database):
    _run("ledger", "write-off", "C1", "200.00", "--actor", "clerk-a")

    output = _run("ledger", "approve", "1", "--actor", "lead-b")

    assert "write_off of 200.00 for C1 is approved" in output
    assert _state(cli_database) == (
        [("approved", "clerk-a", "lead-b")],
        Decimal("600.00"),
    )


def test_approve_by_role_without_review(cli_database):
    _run("ledger", "write-off", "C1", "200.00", "--actor", "clerk-a")

    output = _fail("ledger", "approve", "1", "--actor", "ana")

    assert "role 'analyst' of user 'ana' may not review" in output
    assert "act as a user with role clerk, admin" in output
    assert _state(cli_database) == ([("pending", "clerk-a", "")], Decimal("800.00"))


def test_approve_by_user_with_revoked_key(cli_database):
    _run("ledger", "write-off", "C1", "200.00", "--actor", "clerk-a")
    key = _run("keys", "create", "gone-c", "--role", "clerk").strip().splitlines()[-1]
    _run("keys", "revoke", key[:10])

    output = _fail("ledger", "approve", "1", "--actor", "gone-c")

    assert "user 'gone-c' is inactive" in output
    assert _state(cli_database) == ([("pending", "clerk-a", "")], Decimal("800.00"))


def test_reject_by_unknown_user_rejected(cli_database):
    _run("ledger", "write-off", "C1", "200.00", "--actor", "clerk-a")

    output = _fail("ledger", "reject", "1", "--actor", "nobody")

    assert "user 'nobody' not found" in output
    assert _state(cli_database) == ([("pending", "clerk-a", "")], Decimal("800.00"))


@pytest.mark.parametrize(
    "command",
    [
        ["write-off", "C1", "200.00"],
        ["refund", "C1", "200.00"],
        ["fee", "C1", "5.00"],
    ],
)
def test_request_by_unknown_user_rejected(cli_database, command):
    output = _fail("ledger", *command, "--actor", "ghost")

    assert "user 'ghost' not found" in output
    assert _state(cli_database) == ([], Decimal("800.00"))


def test_request_default_actor_is_login(cli_database, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "clerk-a")

    output = _run("ledger", "write-off", "C1", "200.00")

    assert "is pending; another user must approve it" in output
    assert _state(cli_database) == ([("pending", "clerk-a", "")], Decimal("800.00"))
