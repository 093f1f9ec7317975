"""The prepayment ledger: receipts, applications, reversals and cancellations."""

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord, InvoiceRecord, OrderRecord
from models.db import session_scope
from models.tables import Allocation, LedgerEntry, SalesOrder, StatementLine
from service import booking, ledger, master
from service.booking import Part
from service.ledger import BalanceConflict, InvalidLedgerRequest

TODAY = date(2025, 8, 20)


def _setup(engine, *orders: tuple[str, str]):
    with session_scope(engine) as session:
        master.upsert_customers(
            session,
            [
                CustomerRecord("C1", "恒达机械有限公司", bank_accounts=("6222001",)),
                CustomerRecord("C2", "Wrenfield Club"),
            ],
        )
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    order_id=order_id,
                    customer_id="C1",
                    order_date=date(2025, 6, 1) + timedelta(days=number),
                    amount=Decimal(amount),
                    open_amount=Decimal(amount),
                )
                for number, (order_id, amount) in enumerate(orders)
            ],
            as_of=datetime(2025, 6, 1, tzinfo=UTC),
        )


def _receive(engine, amount: str, *, ref="L1", day=date(2025, 6, 10), customer="C1"):
    """Book a whole line to a customer's balance; return the line id."""
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref=ref,
            dedupe_key=f"k-{ref}",
            booking_date=day,
            amount=Decimal(amount),
            counterparty_account="6222001",
        )
        session.add(line)
        session.flush()
        booking.confirm(
            session, line, [Part("balance", Decimal(amount), customer)], actor="clerk-a"
        )
        return line.id


def _apply(engine, amount: str, **target):
    with session_scope(engine) as session:
        return ledger.apply_balance(
            session,
            customer_id="C1",
            amount=Decimal(amount),
            actor="clerk-a",
            today=TODAY,
            **target,
        )


def _balance(engine, customer_id="C1") -> Decimal:
    with Session(engine) as session:
        return ledger.balance(session, customer_id)


def _open_amount(engine, order_id) -> Decimal:
    with Session(engine) as session:
        return session.get(SalesOrder, order_id).open_amount


def _entries(engine, customer_id="C1") -> list[LedgerEntry]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(LedgerEntry)
                .where(LedgerEntry.customer_id == customer_id)
                .order_by(LedgerEntry.id)
            ).all()
        )


def test_ledger_receipt_dated_by_line(engine):
    _setup(engine)
    line_id = _receive(engine, "500.00", day=date(2025, 6, 10))

    [receipt] = _entries(engine)

    assert receipt.kind == "receipt"
    assert receipt.amount == Decimal("500.00")
    assert receipt.line_id == line_id
    assert receipt.booked_on == date(2025, 6, 10)
    assert receipt.actor == "clerk-a"
    assert _balance(engine) == Decimal("500.00")


def test_ledger_apply_to_order(engine):
    _setup(engine, ("SO-1", "300.00"))
    _receive(engine, "500.00")

    [entry] = _apply(engine, "300.00", order_id="SO-1", note="pay SO-1 from advance")

    assert entry.kind == "application"
    assert entry.amount == Decimal("-300.00")
    assert entry.order_id == "SO-1"
    assert entry.booked_on == TODAY
    assert _balance(engine) == Decimal("200.00")
    assert _open_amount(engine, "SO-1") == Decimal("0.00")
    with Session(engine) as session:
        assert session.get(SalesOrder, "SO-1").status == "paid"


@pytest.mark.parametrize(
    ("received", "order", "applied", "match"),
    [
        pytest.param("100.00", "300.00", "150.00", "balance is 100.00", id="balance"),
        pytest.param("500.00", "300.00", "400.00", "cannot take 400.00", id="order"),
    ],
)
def test_ledger_apply_beyond_limit_books_nothing(
    engine, received, order, applied, match
):
    _setup(engine, ("SO-1", order))
    _receive(engine, received)

    with pytest.raises(BalanceConflict, match=match):
        _apply(engine, applied, order_id="SO-1")

    assert _balance(engine) == Decimal(received)
    assert _open_amount(engine, "SO-1") == Decimal(order)
    assert [e.kind for e in _entries(engine)] == ["receipt"]


def test_ledger_apply_needs_one_target(engine):
    _setup(engine, ("SO-1", "300.00"))
    _receive(engine, "500.00")

    with pytest.raises(InvalidLedgerRequest, match="either an order_id or an invoice"):
        _apply(engine, "10.00")
    with pytest.raises(InvalidLedgerRequest, match="must be positive"):
        _apply(engine, "0.00", order_id="SO-1")


def test_ledger_apply_other_customers_order_rejected(engine):
    _setup(engine, ("SO-1", "300.00"))
    _receive(engine, "500.00", customer="C2")

    with (
        session_scope(engine) as session,
        pytest.raises(InvalidLedgerRequest, match="belongs to customer C1"),
    ):
        ledger.apply_balance(
            session,
            customer_id="C2",
            amount=Decimal("100.00"),
            actor="clerk-a",
            today=TODAY,
            order_id="SO-1",
        )


def test_ledger_apply_to_invoice_pays_its_orders(engine):
    _setup(engine, ("SO-1", "100.00"), ("SO-2", "250.00"))
    _receive(engine, "500.00")
    with session_scope(engine) as session:
        master.upsert_invoices(
            session,
            [InvoiceRecord("INV-1", ("SO-1", "SO-2"), Decimal("350.00"), None)],
        )

    entries = _apply(engine, "300.00", invoice_id="INV-1")

    assert [(e.order_id, e.amount, e.invoice_id) for e in entries] == [
        ("SO-1", Decimal("-100.00"), "INV-1"),
        ("SO-2", Decimal("-200.00"), "INV-1"),
    ]
    assert _open_amount(engine, "SO-2") == Decimal("50.00")
    assert _balance(engine) == Decimal("200.00")
    with pytest.raises(BalanceConflict, match="have 50.00 open"):
        _apply(engine, "60.00", invoice_id="INV-1")


def test_ledger_concurrent_applications_never_overdraw(engine):
    _setup(engine, ("SO-1", "300.00"), ("SO-2", "300.00"))
    _receive(engine, "100.00")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def apply(order_id: str) -> None:
        barrier.wait()
        try:
            _apply(engine, "70.00", order_id=order_id)
            outcomes.append("applied")
        except BalanceConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=apply, args=(o,)) for o in ("SO-1", "SO-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["applied", "conflict"]
    assert _balance(engine) == Decimal("30.00")
    opens = {_open_amount(engine, "SO-1"), _open_amount(engine, "SO-2")}
    assert opens == {Decimal("230.00"), Decimal("300.00")}


def test_ledger_concurrent_applications_one_order(engine):
    _setup(engine, ("SO-1", "100.00"))
    _receive(engine, "500.00")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def apply() -> None:
        barrier.wait()
        try:
            _apply(engine, "80.00", order_id="SO-1")
            outcomes.append("applied")
        except BalanceConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["applied", "conflict"]
    assert _open_amount(engine, "SO-1") == Decimal("20.00")
    assert _balance(engine) == Decimal("420.00")


def test_ledger_reverse_application_reopens_order(engine):
    _setup(engine, ("SO-1", "300.00"))
    _receive(engine, "500.00")
    [entry] = _apply(engine, "300.00", order_id="SO-1")

    with session_scope(engine) as session:
        reversal = ledger.reverse_entry(
            session, entry.id, actor="clerk-b", reason="wrong order", today=TODAY
        )

    assert reversal.kind == "reversal"
    assert reversal.amount == Decimal("300.00")
    assert reversal.reverses_id == entry.id
    assert _balance(engine) == Decimal("500.00")
    assert _open_amount(engine, "SO-1") == Decimal("300.00")
    with Session(engine) as session:
        assert session.get(SalesOrder, "SO-1").status == "open"
    with (
        session_scope(engine) as session,
        pytest.raises(InvalidLedgerRequest, match="has 0.00 left to reverse"),
    ):
        ledger.reverse_entry(
            session, entry.id, actor="clerk-b", reason="again", today=TODAY
        )


def test_ledger_receipt_not_reversible_directly(engine):
    _setup(engine)
    _receive(engine, "500.00")
    [receipt] = _entries(engine)

    with (
        session_scope(engine) as session,
        pytest.raises(InvalidLedgerRequest, match="undo that line's allocation"),
    ):
        ledger.reverse_entry(
            session, receipt.id, actor="clerk-b", reason="mistake", today=TODAY
        )


def test_ledger_undo_line_reverses_receipt(engine):
    _setup(engine)
    line_id = _receive(engine, "500.00")

    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        booking.reverse(session, line, actor="clerk-b", reason="wrong customer")

    receipt, reversal = _entries(engine)
    assert reversal.kind == "reversal"
    assert reversal.amount == Decimal("-500.00")
    assert reversal.reverses_id == receipt.id
    assert reversal.line_id == line_id
    assert _balance(engine) == Decimal("0.00")


def test_ledger_cancelled_order_releases_applications(engine):
    _setup(engine, ("SO-1", "300.00"), ("SO-2", "200.00"))
    _receive(engine, "250.00", ref="L1")
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref="L2",
            dedupe_key="k-L2",
            booking_date=date(2025, 6, 11),
            amount=Decimal("200.00"),
        )
        session.add(line)
        session.flush()
        booking.confirm(
            session, line, [Part("order", Decimal("200.00"), "C1", "SO-2")], actor="a"
        )
    _apply(engine, "100.00", order_id="SO-1")
    _apply(engine, "150.00", order_id="SO-1")

    cancelled = [
        OrderRecord(
            "SO-1",
            "C1",
            date(2025, 6, 1),
            Decimal("300.00"),
            Decimal("300.00"),
            status="cancelled",
        )
    ]
    with session_scope(engine) as session:
        first = master.upsert_orders(session, cancelled, actor="erp")
    with session_scope(engine) as session:
        second = master.upsert_orders(session, cancelled, actor="erp")

    assert first.released == []
    assert second.released == []
    assert _balance(engine) == Decimal("250.00")
    kinds = [(e.kind, e.amount, e.order_id) for e in _entries(engine)]
    assert kinds[-2:] == [
        ("reversal", Decimal("100.00"), "SO-1"),
        ("reversal", Decimal("150.00"), "SO-1"),
    ]


def test_ledger_cancelled_order_releases_line_payment(engine):
    _setup(engine, ("SO-1", "300.00"))
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref="L1",
            dedupe_key="k-L1",
            booking_date=date(2025, 6, 11),
            amount=Decimal("300.00"),
        )
        session.add(line)
        session.flush()
        booking.confirm(
            session, line, [Part("order", Decimal("300.00"), "C1", "SO-1")], actor="a"
        )
        line_id = line.id
    record = OrderRecord(
        "SO-1",
        "C1",
        date(2025, 6, 1),
        Decimal("300.00"),
        Decimal("300.00"),
        status="cancelled",
    )

    with session_scope(engine) as session:
        report = master.upsert_orders(session, [record], actor="erp")
        released = [(a.target, a.amount, a.line_id) for a in report.released]

    assert released == [("balance", Decimal("300.00"), line_id)]
    [receipt] = _entries(engine)
    assert (receipt.kind, receipt.order_id) == ("receipt", "SO-1")
    assert _balance(engine) == Decimal("300.00")
    with Session(engine) as session:
        statuses = session.exec(
            select(Allocation.target, Allocation.status).where(
                Allocation.line_id == line_id
            )
        ).all()
    assert sorted(statuses) == [("balance", "confirmed"), ("order", "reversed")]


def test_ledger_erp_upsert_keeps_application(engine):
    _setup(engine, ("SO-1", "300.00"))
    _receive(engine, "500.00")
    _apply(engine, "120.00", order_id="SO-1")
    export = OrderRecord(
        "SO-1", "C1", date(2025, 6, 1), Decimal("300.00"), Decimal("300.00")
    )

    with session_scope(engine) as session:
        master.upsert_orders(session, [export], as_of=datetime(2025, 6, 2, tzinfo=UTC))

    assert _open_amount(engine, "SO-1") == Decimal("180.00")


def test_ledger_balance_is_sum_of_entries(engine):
    _setup(engine, ("SO-1", "300.00"), ("SO-2", "80.00"))
    _receive(engine, "500.00", ref="L1")
    _receive(engine, "45.50", ref="L2")
    _apply(engine, "300.00", order_id="SO-1")
    _apply(engine, "80.00", order_id="SO-2")

    with Session(engine) as session:
        view = ledger.customer_ledger(session, "C1")
        totals = ledger.balances(session)

    assert view.balance == sum((e.amount for e in view.entries), Decimal("0.00"))
    assert view.balance == Decimal("165.50")
    assert totals["C1"] == view.balance


def test_ledger_unknown_customer_not_found(engine):
    _setup(engine)

    with (
        Session(engine) as session,
        pytest.raises(ledger.LedgerNotFound, match="customer 'NOPE' does not exist"),
    ):
        ledger.customer_ledger(session, "NOPE")


def test_ledger_layers_first_in_first_out(engine):
    _setup(engine, ("SO-1", "300.00"))
    _receive(engine, "100.00", ref="L1", day=date(2025, 3, 1))
    _receive(engine, "200.00", ref="L2", day=date(2025, 5, 1))
    _apply(engine, "150.00", order_id="SO-1")

    with Session(engine) as session:
        layers = ledger.balance_layers(session)["C1"]

    assert [(layer.day, layer.amount) for layer in layers] == [
        (date(2025, 5, 1), Decimal("150.00"))
    ]
