"""Second approvals of refunds and write-offs, refund payments and bank fees."""

import threading
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord
from models.db import session_scope
from models.tables import AuditEvent, LedgerEntry, LedgerRequest, StatementLine
from service import booking, controls, ledger, master
from service.booking import Part
from service.ledger import (
    ApprovalConflict,
    BalanceConflict,
    InvalidLedgerRequest,
    OwnRequest,
)

TODAY = date(2025, 8, 20)
LIMIT = Decimal("1000.00")


def _setup(engine, received: str = "5000.00") -> None:
    with session_scope(engine) as session:
        master.upsert_customers(session, [CustomerRecord("C1", "恒达机械有限公司")])
    _line(engine, received, ref="L1", book_to_balance=True)


def _line(
    engine,
    amount: str,
    *,
    ref: str,
    status: str = "new",
    book_to_balance: bool = False,
    day: date = date(2025, 6, 10),
) -> int:
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref=ref,
            dedupe_key=f"k-{ref}",
            booking_date=day,
            amount=Decimal(amount),
            status=status,
        )
        session.add(line)
        session.flush()
        if book_to_balance:
            booking.confirm(
                session, line, [Part("balance", Decimal(amount), "C1")], actor="a"
            )
        return line.id


def _refund(engine, amount: str, actor: str = "clerk-a", **kwargs) -> LedgerRequest:
    with session_scope(engine) as session:
        return controls.request_refund(
            session,
            customer_id="C1",
            amount=Decimal(amount),
            actor=actor,
            limit=LIMIT,
            today=TODAY,
            **kwargs,
        )


def _taking(engine, kind: str, amount: str, actor="clerk-a", **kwargs):
    with session_scope(engine) as session:
        return controls.request_taking(
            session,
            customer_id="C1",
            kind=kind,
            amount=Decimal(amount),
            actor=actor,
            limit=LIMIT,
            today=TODAY,
            **kwargs,
        )


def _approve(engine, request_id: int, actor: str) -> LedgerRequest:
    with session_scope(engine) as session:
        return controls.approve_request(session, request_id, actor=actor, today=TODAY)


def _balance(engine) -> Decimal:
    with Session(engine) as session:
        return ledger.balance(session, "C1")


def _kinds(engine) -> list[str]:
    with Session(engine) as session:
        return list(
            session.exec(select(LedgerEntry.kind).order_by(LedgerEntry.id)).all()
        )


@pytest.mark.parametrize(
    ("kind", "amount", "status", "balance"),
    [
        pytest.param("write_off", "1000.00", "approved", "4000.00", id="at-limit"),
        pytest.param("write_off", "1000.01", "pending", "5000.00", id="above-limit"),
        pytest.param("fee", "2000.00", "approved", "3000.00", id="fee-never-waits"),
    ],
)
def test_ledger_taking_waits_above_limit(engine, kind, amount, status, balance):
    _setup(engine)

    request = _taking(engine, kind, amount)

    assert request.status == status
    assert _balance(engine) == Decimal(balance)
    assert (request.entry_id is None) == (status == "pending")


def test_ledger_approval_needs_second_user(engine):
    _setup(engine)
    request = _taking(engine, "write_off", "3000.00", actor="clerk-a")

    with pytest.raises(OwnRequest, match="another user must approve it"):
        _approve(engine, request.id, "clerk-a")
    assert _balance(engine) == Decimal("5000.00")

    approved = _approve(engine, request.id, "clerk-b")

    assert approved.status == "approved"
    assert approved.decided_by == "clerk-b"
    assert _balance(engine) == Decimal("2000.00")
    with Session(engine) as session:
        entry = session.get(LedgerEntry, approved.entry_id)
    assert (entry.kind, entry.amount, entry.actor) == (
        "write_off",
        Decimal("-3000.00"),
        "clerk-b",
    )


def test_ledger_approve_twice_is_conflict(engine):
    _setup(engine)
    request = _taking(engine, "write_off", "3000.00")
    _approve(engine, request.id, "clerk-b")

    with pytest.raises(ApprovalConflict, match="already approved by clerk-b"):
        _approve(engine, request.id, "clerk-c")

    assert _kinds(engine) == ["receipt", "write_off"]


def test_ledger_concurrent_approvals_book_once(engine):
    _setup(engine)
    request = _taking(engine, "write_off", "3000.00")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(actor: str) -> None:
        barrier.wait()
        try:
            _approve(engine, request.id, actor)
            outcomes.append("approved")
        except ApprovalConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=approve, args=(a,)) for a in ("b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["approved", "conflict"]
    assert _balance(engine) == Decimal("2000.00")


def test_ledger_reject_books_nothing(engine):
    _setup(engine)
    request = _taking(engine, "write_off", "3000.00")

    with session_scope(engine) as session:
        rejected = controls.reject_request(
            session, request.id, actor="clerk-a", reason="asked by mistake"
        )

    assert rejected.status == "rejected"
    assert _kinds(engine) == ["receipt"]
    with Session(engine) as session:
        actions = session.exec(select(AuditEvent.action)).all()
    assert "reject_write_off" in actions


def test_ledger_approval_rechecks_balance(engine):
    _setup(engine, received="5000.00")
    request = _taking(engine, "write_off", "3000.00")
    _taking(engine, "fee", "2500.00")

    with pytest.raises(BalanceConflict, match="balance is 2500.00"):
        _approve(engine, request.id, "clerk-b")

    with Session(engine) as session:
        assert session.get(LedgerRequest, request.id).status == "pending"
    assert _balance(engine) == Decimal("2500.00")


def test_ledger_refund_paid_by_money_out_line(engine):
    _setup(engine)
    request = _refund(engine, "1500.00")
    approved = _approve(engine, request.id, "clerk-b")
    payment = _line(engine, "-1500.00", ref="OUT-1", day=date(2025, 6, 20))

    with session_scope(engine) as session:
        paid = controls.pay_refund(session, request.id, payment, actor="clerk-a")

    assert approved.entry_id is not None
    assert paid.payment_line_id == payment
    assert _balance(engine) == Decimal("3500.00")
    with Session(engine) as session:
        assert session.get(StatementLine, payment).status == "refund"


def test_ledger_payment_line_pays_one_refund(engine):
    _setup(engine)
    first = _refund(engine, "500.00")
    second = _refund(engine, "500.00")
    payment = _line(engine, "-500.00", ref="OUT-1")
    with session_scope(engine) as session:
        controls.pay_refund(session, first.id, payment, actor="clerk-a")

    with (
        session_scope(engine) as session,
        pytest.raises(
            BalanceConflict, match="OUT-1 is refund; only an open money-out line"
        ),
    ):
        controls.pay_refund(session, second.id, payment, actor="clerk-a")

    with Session(engine) as session:
        assert session.get(LedgerRequest, second.id).payment_line_id is None


@pytest.mark.parametrize(
    ("line_amount", "match"),
    [
        pytest.param("-1499.99", "is paid by a line of -1500.00", id="other-amount"),
        pytest.param("1500.00", "is paid by a line of -1500.00", id="money-in"),
    ],
)
def test_ledger_refund_payment_must_match(engine, line_amount, match):
    _setup(engine)
    request = _refund(engine, "1500.00")
    _approve(engine, request.id, "clerk-b")
    payment = _line(engine, line_amount, ref="OUT-1")

    with (
        session_scope(engine) as session,
        pytest.raises(InvalidLedgerRequest, match=match),
    ):
        controls.pay_refund(session, request.id, payment, actor="clerk-a")


def test_ledger_pending_refund_cannot_be_paid(engine):
    _setup(engine)
    request = _refund(engine, "1500.00")
    payment = _line(engine, "-1500.00", ref="OUT-1")

    with (
        session_scope(engine) as session,
        pytest.raises(
            InvalidLedgerRequest, match="only an approved refund can be paid"
        ),
    ):
        controls.pay_refund(session, request.id, payment, actor="clerk-a")


def test_ledger_refund_of_marked_line(engine):
    _setup(engine)
    marked = _line(engine, "800.00", ref="L2", status="refund")
    payment = _line(engine, "-800.00", ref="OUT-1")

    request = _refund(engine, "800.00", source_line_id=marked, payment_line_id=payment)

    assert request.status == "approved"
    assert request.entry_id is None
    assert _balance(engine) == Decimal("5000.00")
    with pytest.raises(InvalidLedgerRequest, match="refunded or asked for already"):
        _refund(engine, "1.00", source_line_id=marked)


def test_ledger_cancel_unpaid_refund_returns_money(engine):
    _setup(engine)
    request = _refund(engine, "600.00")

    with session_scope(engine) as session:
        cancelled = controls.cancel_refund(
            session,
            request.id,
            actor="clerk-b",
            reason="customer keeps it",
            today=TODAY,
        )

    assert cancelled.status == "cancelled"
    assert _kinds(engine) == ["receipt", "refund", "reversal"]
    assert _balance(engine) == Decimal("5000.00")


def test_ledger_fee_claims_bank_fee_line(engine):
    _setup(engine)
    fee_line = _line(engine, "-15.00", ref="FEE-1")

    request = _taking(engine, "fee", "15.00", line_id=fee_line)

    with Session(engine) as session:
        entry = session.get(LedgerEntry, request.entry_id)
        line = session.get(StatementLine, fee_line)
    assert (entry.kind, entry.amount, entry.line_id) == (
        "fee",
        Decimal("-15.00"),
        fee_line,
    )
    assert line.status == "fee"

    with session_scope(engine) as session:
        ledger.reverse_entry(
            session, entry.id, actor="clerk-b", reason="bank refunded it", today=TODAY
        )
    with Session(engine) as session:
        assert session.get(StatementLine, fee_line).status == "unmatched"
    assert _balance(engine) == Decimal("5000.00")


def test_ledger_refund_beyond_balance_rejected(engine):
    _setup(engine, received="100.00")

    with pytest.raises(BalanceConflict, match="cannot refund 150.00"):
        _refund(engine, "150.00")

    with Session(engine) as session:
        assert session.exec(select(LedgerRequest)).all() == []


def test_ledger_view_lists_open_requests(engine):
    _setup(engine)
    pending = _taking(engine, "write_off", "3000.00")
    unpaid = _refund(engine, "200.00")
    paid = _refund(engine, "100.00")
    payment = _line(engine, "-100.00", ref="OUT-1")
    with session_scope(engine) as session:
        controls.pay_refund(session, paid.id, payment, actor="clerk-a")
    _taking(engine, "write_off", "50.00")

    with Session(engine) as session:
        view = ledger.customer_ledger(session, "C1")

    assert [request.id for request in view.requests] == [pending.id, unpaid.id]
