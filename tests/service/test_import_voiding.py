"""Voiding an import batch: lines voided, bookings undone, keys released."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import (
    Allocation,
    AuditEvent,
    ImportBatch,
    LedgerEntry,
    ReviewTask,
    SalesOrder,
    StatementLine,
)
from service import booking, master
from service.booking import Part
from service.cli import app
from service.imports import import_bytes
from service.settings import Settings
from service.voiding import (
    BatchAlreadyVoided,
    BatchNotFound,
    InvalidVoid,
    void_batch,
)

STATEMENT = (
    "line_ref,booking_date,amount,currency,counterparty_name,"
    "counterparty_account,memo,bank_reference\n"
    "L1,2025-06-10,300.00,CNY,恒达机械有限公司,6222001,SO-1,B1\n"
    "L2,2025-06-10,500.00,CNY,恒达机械有限公司,6222001,advance,B2\n"
    "L3,2025-06-11,80.00,CNY,恒达机械有限公司,6222001,SO-2?,B3\n"
).encode()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def imported(engine, settings) -> int:
    """Load one customer with two orders and import the statement; return the batch."""
    with session_scope(engine) as session:
        master.upsert_customers(
            session,
            [CustomerRecord("C1", "恒达机械有限公司", bank_accounts=("6222001",))],
        )
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    "SO-1", "C1", date(2025, 6, 1), Decimal("300.00"), Decimal("300.00")
                ),
                OrderRecord(
                    "SO-2", "C1", date(2025, 6, 2), Decimal("80.00"), Decimal("80.00")
                ),
            ],
        )
        report = import_bytes(
            session, STATEMENT, settings, file_name="june.csv", actor="tester"
        )
    return report.batch_ids[0]


def _line(session: Session, ref: str) -> StatementLine:
    query = select(StatementLine).where(StatementLine.line_ref == ref)
    return session.exec(query.order_by(StatementLine.id)).first()


def _book(engine) -> None:
    """Confirm L1 to SO-1 and L2 to the balance; propose L3 and open its task."""
    with session_scope(engine) as session:
        booking.confirm(
            session,
            _line(session, "L1"),
            [Part("order", Decimal("300.00"), "C1", "SO-1")],
            actor="clerk-a",
        )
        booking.confirm(
            session,
            _line(session, "L2"),
            [Part("balance", Decimal("500.00"), "C1")],
            actor="clerk-a",
        )
        third = _line(session, "L3")
        booking.propose(
            session,
            third,
            [Part("order", Decimal("80.00"), "C1", "SO-2")],
            confidence=0.6,
            decision="review",
            model_version=None,
        )
        third.status = "review"
        session.add(third)
        session.add(ReviewTask(line_id=third.id, reason="close call"))


def _void(engine, batch_id: int, reason: str = "imported for the wrong account"):
    with session_scope(engine) as session:
        return void_batch(session, batch_id, actor="clerk-b", reason=reason)


def test_void_marks_batch_and_lines(engine, imported):
    report = _void(engine, imported)

    with Session(engine) as session:
        batch = session.get(ImportBatch, imported)
        lines = session.exec(select(StatementLine)).all()
        [event] = session.exec(
            select(AuditEvent).where(AuditEvent.action == "void")
        ).all()
    assert report.lines_voided == 3
    assert batch.status == "voided"
    assert batch.voided_by == "clerk-b"
    assert batch.voided_at is not None
    assert {line.status for line in lines} == {"voided"}
    assert event.actor == "clerk-b"
    assert event.entity_id == str(imported)
    assert event.detail["reason"] == "imported for the wrong account"


def test_void_reverses_bookings(engine, imported):
    _book(engine)

    report = _void(engine, imported)

    with Session(engine) as session:
        order = session.get(SalesOrder, "SO-1")
        allocations = session.exec(select(Allocation).order_by(Allocation.id)).all()
        entries = session.exec(select(LedgerEntry).order_by(LedgerEntry.id)).all()
        balance = booking.balance_of(session, "C1")
    assert report.allocations_reversed == 2
    assert report.orders_reopened == ["SO-1"]
    assert order.open_amount == Decimal("300.00")
    assert order.status == "open"
    assert [a.status for a in allocations] == ["reversed", "reversed", "rejected"]
    assert [(e.kind, e.amount) for e in entries] == [
        ("receipt", Decimal("500.00")),
        ("reversal", Decimal("-500.00")),
    ]
    assert entries[1].reverses_id == entries[0].id
    assert balance == Decimal("0.00")


def test_void_closes_open_review_tasks(engine, imported):
    _book(engine)

    report = _void(engine, imported)

    with Session(engine) as session:
        [task] = session.exec(select(ReviewTask)).all()
    assert report.review_tasks_closed == 1
    assert report.proposals_rejected == 1
    assert task.status == "closed"
    assert task.decided_by == "clerk-b"


def test_void_releases_keys_for_reimport(engine, settings, imported):
    _void(engine, imported)

    with session_scope(engine) as session:
        report = import_bytes(session, STATEMENT, settings, file_name="june.csv")

    with Session(engine) as session:
        lines = session.exec(select(StatementLine).order_by(StatementLine.id)).all()
    assert report.lines_new == 3
    assert [line.status for line in lines] == ["voided"] * 3 + ["new"] * 3
    assert lines[0].dedupe_key == f"void:{lines[0].id}:{lines[3].dedupe_key}"


def test_void_reports_negative_balance(engine, imported):
    _book(engine)
    with session_scope(engine) as session:
        # The balance from L2 was spent on an order before the void.
        session.add(
            LedgerEntry(
                customer_id="C1",
                kind="application",
                amount=Decimal("-500.00"),
                order_id="SO-2",
            )
        )

    report = _void(engine, imported)

    assert report.negative_balances == {"C1": Decimal("-500.00")}
    assert "customer C1's prepayment balance is now -500.00" in report.summary()


def test_void_lists_bank_reversals(engine, imported):
    with session_scope(engine) as session:
        # Matching marks a bank reversal this way after reversing its credit.
        line = _line(session, "L3")
        line.status = "reversal"
        session.add(line)

    report = _void(engine, imported)

    assert report.bank_reversals == ["L3"]
    assert "bank reversals voided: L3." in report.summary()


@pytest.mark.parametrize(
    ("batch", "reason", "error", "message"),
    [
        pytest.param(
            99, "typo", BatchNotFound, "import batch 99 not found", id="unknown"
        ),
        pytest.param(None, "  ", InvalidVoid, "a reason is required", id="no-reason"),
    ],
)
def test_void_rejects_bad_request(engine, imported, batch, reason, error, message):
    with pytest.raises(error, match=message):
        _void(engine, imported if batch is None else batch, reason=reason)

    with Session(engine) as session:
        assert session.get(ImportBatch, imported).status == "imported"


def test_void_twice_is_rejected(engine, imported):
    _void(engine, imported)

    with pytest.raises(BatchAlreadyVoided, match="was voided by clerk-b"):
        _void(engine, imported, reason="again")


def test_cli_void_prints_summary(engine, imported, database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CASHMATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    done = runner.invoke(
        app,
        ["void", str(imported), "--reason", "duplicate upload", "--actor", "clerk-c"],
    )
    again = runner.invoke(app, ["void", str(imported), "--reason", "again"])

    with Session(engine) as session:
        batch = session.get(ImportBatch, imported)
    assert done.exit_code == 0, done.output
    assert f"batch {imported} (june.csv) voided: 3 lines" in done.output
    assert batch.voided_by == "clerk-c"
    assert again.exit_code == 1
    assert "was voided by clerk-c" in again.output
