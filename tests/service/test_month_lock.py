"""Closed months: nothing is booked in them, corrections go to an open month."""

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import AuditEvent, LedgerEntry, StatementLine
from service import booking, controls, ledger, master
from service.booking import Part
from service.ledger import InvalidLedgerRequest, MonthClosed

TODAY = date(2025, 8, 20)


def _setup(engine) -> None:
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


def _line(engine, amount: str, ref: str, day: date) -> int:
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref=ref,
            dedupe_key=f"k-{ref}",
            booking_date=day,
            amount=Decimal(amount),
        )
        session.add(line)
        session.flush()
        return line.id


def _to_balance(engine, line_id: int) -> None:
    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        booking.confirm(
            session, line, [Part("balance", line.amount, "C1")], actor="clerk-a"
        )


def _close(engine, month: str, today: date = TODAY):
    with session_scope(engine) as session:
        return controls.close_month(session, month, actor="lead", today=today)


def _entries(engine) -> list[LedgerEntry]:
    with Session(engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.id)).all())


@pytest.mark.parametrize(
    ("month", "today", "error", "match"),
    [
        pytest.param(
            "2025-08",
            date(2025, 8, 31),
            InvalidLedgerRequest,
            "has not ended",
            id="current",
        ),
        pytest.param(
            "2025-13",
            TODAY,
            InvalidLedgerRequest,
            "not a month like 2025-06",
            id="invalid",
        ),
        pytest.param(
            "June", TODAY, InvalidLedgerRequest, "not a month like", id="words"
        ),
    ],
)
def test_month_close_rejects(engine, month, today, error, match):
    with session_scope(engine) as session, pytest.raises(error, match=match):
        controls.close_month(session, month, actor="lead", today=today)


def test_month_close_twice_rejected(engine):
    row = _close(engine, "2025-06")

    with pytest.raises(MonthClosed, match="2025-06 is closed already"):
        _close(engine, "2025-06")

    assert (row.month, row.closed_by) == ("2025-06", "lead")
    with Session(engine) as session:
        actions = session.exec(select(AuditEvent.action)).all()
    assert actions == ["close_month"]


@pytest.mark.parametrize(
    "action",
    [
        pytest.param("apply", id="application"),
        pytest.param("write_off", id="write-off"),
        pytest.param("fee", id="fee"),
        pytest.param("refund", id="refund"),
    ],
)
def test_month_closed_refuses_booking_in_it(engine, action):
    _setup(engine)
    _to_balance(engine, _line(engine, "500.00", "L1", date(2025, 6, 10)))
    _close(engine, "2025-06")
    june = date(2025, 6, 28)

    with (
        session_scope(engine) as session,
        pytest.raises(MonthClosed, match="2025-06 is closed"),
    ):
        if action == "apply":
            ledger.apply_balance(
                session,
                customer_id="C1",
                amount=Decimal("100.00"),
                actor="clerk-a",
                today=TODAY,
                order_id="SO-1",
                booked_on=june,
            )
        elif action == "refund":
            controls.request_refund(
                session,
                customer_id="C1",
                amount=Decimal("100.00"),
                actor="clerk-a",
                limit=Decimal("1000.00"),
                today=TODAY,
                booked_on=june,
            )
        else:
            controls.request_taking(
                session,
                customer_id="C1",
                kind=action,
                amount=Decimal("100.00"),
                actor="clerk-a",
                limit=Decimal("1000.00"),
                today=TODAY,
                booked_on=june,
            )

    assert [entry.kind for entry in _entries(engine)] == ["receipt"]


def test_month_closed_line_booked_in_next_open_month(engine):
    _setup(engine)
    _close(engine, "2025-06")
    _close(engine, "2025-07")
    late = _line(engine, "250.00", "L9", date(2025, 6, 30))

    _to_balance(engine, late)

    [receipt] = _entries(engine)
    assert receipt.booked_on == date(2025, 8, 1)
    assert receipt.line_id == late


def test_month_correction_references_closed_entry(engine):
    _setup(engine)
    _to_balance(engine, _line(engine, "500.00", "L1", date(2025, 6, 10)))
    with session_scope(engine) as session:
        [application] = ledger.apply_balance(
            session,
            customer_id="C1",
            amount=Decimal("300.00"),
            actor="clerk-a",
            today=date(2025, 6, 20),
            order_id="SO-1",
        )
    _close(engine, "2025-06")

    with session_scope(engine) as session:
        reversal = ledger.reverse_entry(
            session,
            application.id,
            actor="clerk-b",
            reason="paid by the customer's sister company instead",
            today=TODAY,
        )

    assert application.booked_on == date(2025, 6, 20)
    assert reversal.booked_on == TODAY
    assert reversal.reverses_id == application.id
    assert "reverses entry" in reversal.note
    with Session(engine) as session:
        assert ledger.balance(session, "C1") == Decimal("500.00")


def test_month_closed_refuses_dated_correction(engine):
    _setup(engine)
    _to_balance(engine, _line(engine, "500.00", "L1", date(2025, 6, 10)))
    with session_scope(engine) as session:
        [application] = ledger.apply_balance(
            session,
            customer_id="C1",
            amount=Decimal("300.00"),
            actor="clerk-a",
            today=date(2025, 6, 20),
            order_id="SO-1",
        )
    _close(engine, "2025-06")

    with (
        session_scope(engine) as session,
        pytest.raises(MonthClosed, match="dated 2025-06-30"),
    ):
        ledger.reverse_entry(
            session,
            application.id,
            actor="clerk-b",
            reason="wrong order",
            today=TODAY,
            booked_on=date(2025, 6, 30),
        )


def test_month_undo_of_closed_receipt_booked_today(engine):
    _setup(engine)
    line_id = _line(engine, "500.00", "L1", date(2025, 6, 10))
    _to_balance(engine, line_id)
    _close(engine, "2025-06")

    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        booking.reverse(session, line, actor="clerk-b", reason="wrong customer")

    receipt, reversal = _entries(engine)
    assert receipt.booked_on == date(2025, 6, 10)
    assert reversal.reverses_id == receipt.id
    assert reversal.booked_on > date(2025, 6, 30)


def test_month_close_waits_for_open_booking(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite one writer at a time orders bookings and closes")
    with session_scope(engine) as booking_session:
        assert ledger.open_day(booking_session, date(2025, 6, 15)) == date(2025, 6, 15)

        # The booking's transaction is still open, so the close must wait.
        with Session(engine) as closing:
            closing.exec(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                controls.close_month(closing, "2025-06", actor="lead", today=TODAY)

    _close(engine, "2025-06")
    with session_scope(engine) as session:
        assert ledger.open_day(session, date(2025, 6, 15)) == date(2025, 7, 1)
