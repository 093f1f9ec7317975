"""A generated month end to end: every cent of the statement is in one place.

The month is imported, matched, reviewed by clerks, and then a repeat
payment is refunded, part of a balance is refunded and applied, and an order
is cancelled. Afterwards each statement line's money must be in exactly one
of an order, a customer balance, a fee, a refund or the unmatched list, and
the orders and the ledger must hold exactly what the lines put there.
"""

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select

from ingest.records import OrderRecord
from models.db import session_scope
from models.errors import AllocationConflict
from models.tables import (
    Allocation,
    LedgerEntry,
    LedgerRequest,
    ReviewTask,
    SalesOrder,
    StatementLine,
)
from service import controls, ledger, master, reports, review
from service.booking import InvalidAllocation
from service.cases import load_master_folder, read_statement_file, store_statement_file
from service.matching import match_lines
from service.review import ReviewConflict, ReviewDecision
from service.serving import current_model
from service.settings import Settings
from training.synthetic import generate_case, write_case

ZERO = Decimal("0.00")
TODAY = date(2024, 12, 5)
LIMIT = Decimal("1000.00")
UNDECIDED_TASKS = 3


@pytest.fixture
def month(engine, database_url, tmp_path, cold_start_dir) -> dict:
    """Run the month and return what the checks need to know about it."""
    case = generate_case(
        seed=11, customers=15, open_orders=120, lines=70, history_lines=0
    )
    folder = tmp_path / "case"
    write_case(case, folder)
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    export = {order.order_id: order.open_amount for order in case.data.orders}

    _import_and_match(engine, folder / "statement.csv", settings, load=folder)
    marked = _review(engine)
    refunds = _plan_refunds(engine, marked)
    _import_refund_payments(engine, tmp_path, refunds, settings)
    _refund(engine, refunds)
    _apply_part_of_a_balance(engine)
    cancelled = _cancel_a_paid_order(engine)
    return {"export": export, "cancelled": cancelled, "refunds": refunds}


def _import_and_match(engine, path: Path, settings: Settings, *, load=None) -> None:
    with session_scope(engine) as session:
        if load is not None:
            load_master_folder(session, load)
        _, lines = store_statement_file(
            session, read_statement_file(path), settings, actor="import"
        )
        model = current_model(session, settings)
        match_lines(session, lines, model, settings, actor="matcher")


def _review(engine) -> int | None:
    """Decide all but a few review tasks; mark one payment for refund."""
    with Session(engine) as session:
        tasks = session.exec(
            select(ReviewTask.id, StatementLine.id, StatementLine.anomaly_reasons)
            .join(StatementLine, StatementLine.id == ReviewTask.line_id)
            .where(ReviewTask.status == "open")
            .order_by(ReviewTask.id)
        ).all()
    assert len(tasks) > UNDECIDED_TASKS + 2, "the month needs review tasks"
    duplicates = [t for t in tasks if "duplicate" in (t[2] or ())]
    refund_task = (duplicates or tasks)[0]
    _decide(engine, refund_task[0], ReviewDecision("refund", note="paid twice"))
    for task_id, _, _ in tasks[UNDECIDED_TASKS:]:
        if task_id != refund_task[0]:
            _decide_one(engine, task_id)
    return refund_task[1]


def _decide(engine, task_id: int, decision: ReviewDecision) -> None:
    with session_scope(engine) as session:
        review.decide(session, task_id, decision, actor="clerk-a")


def _decide_one(engine, task_id: int) -> None:
    """Accept the suggestion, else book to its customer's balance, else dismiss."""
    with Session(engine) as session:
        line = session.get(StatementLine, session.get(ReviewTask, task_id).line_id)
        customer_id = reports.candidate_customer(line)
    fallbacks = [ReviewDecision("accept")]
    if customer_id:
        fallbacks.append(ReviewDecision("balance", customer_id=customer_id))
    fallbacks.append(ReviewDecision("not_customer"))
    for decision in fallbacks:
        try:
            _decide(engine, task_id, decision)
            return
        except (InvalidAllocation, AllocationConflict, ReviewConflict):
            continue
    raise AssertionError(f"no decision could be booked for task {task_id}")


def _plan_refunds(engine, marked: int) -> dict:
    """Choose a customer's balance to refund part of, and the marked line."""
    with Session(engine) as session:
        line = session.get(StatementLine, marked)
        balances = ledger.balances(session)
    rich = max(balances, key=balances.get)
    assert balances[rich] > 0, "the month needs a customer with a balance"
    return {
        "marked_line": marked,
        "marked_amount": line.amount,
        "marked_customer": reports.candidate_customer(line) or rich,
        "balance_customer": rich,
        "balance_amount": min(balances[rich], Decimal("1500.00")),
    }


def _import_refund_payments(engine, tmp_path, refunds: dict, settings) -> None:
    path = tmp_path / "refunds.csv"
    path.write_text(
        "line_ref,booking_date,amount,currency,counterparty_name,"
        "counterparty_account,memo,bank_reference\n"
        f"R1,2024-11-30,-{refunds['marked_amount']},CNY,,,退款,R1\n"
        f"R2,2024-11-30,-{refunds['balance_amount']},CNY,,,预付款退款,R2\n",
        encoding="utf-8",
    )
    _import_and_match(engine, path, settings)
    with Session(engine) as session:
        refs = {"R1": "marked_payment", "R2": "balance_payment"}
        for line in session.exec(
            select(StatementLine).where(StatementLine.line_ref.in_(list(refs)))
        ).all():
            refunds[refs[line.line_ref]] = line.id


def _refund(engine, refunds: dict) -> None:
    for source, customer, amount, payment in (
        (
            refunds["marked_line"],
            refunds["marked_customer"],
            refunds["marked_amount"],
            refunds["marked_payment"],
        ),
        (
            None,
            refunds["balance_customer"],
            refunds["balance_amount"],
            refunds["balance_payment"],
        ),
    ):
        with session_scope(engine) as session:
            request = controls.request_refund(
                session,
                customer_id=customer,
                amount=amount,
                actor="clerk-a",
                limit=LIMIT,
                today=TODAY,
                source_line_id=source,
            )
        if request.status == "pending":
            with session_scope(engine) as session:
                controls.approve_request(
                    session, request.id, actor="lead-b", today=TODAY
                )
        with session_scope(engine) as session:
            controls.pay_refund(session, request.id, payment, actor="clerk-a")


def _apply_part_of_a_balance(engine) -> None:
    with Session(engine) as session:
        balances = ledger.balances(session)
        orders = session.exec(
            select(SalesOrder).where(
                SalesOrder.status.in_(("open", "partly_paid")),
                SalesOrder.customer_id.in_([c for c, b in balances.items() if b > 0]),
            )
        ).all()
    if not orders:
        return
    order = orders[0]
    amount = min(balances[order.customer_id], order.open_amount, Decimal("100.00"))
    with session_scope(engine) as session:
        ledger.apply_balance(
            session,
            customer_id=order.customer_id,
            amount=amount,
            actor="clerk-a",
            today=TODAY,
            order_id=order.order_id,
        )


def _cancel_a_paid_order(engine) -> str:
    with Session(engine) as session:
        allocation = session.exec(
            select(Allocation)
            .where(Allocation.status == "confirmed", Allocation.target == "order")
            .order_by(Allocation.id)
        ).first()
        order = session.get(SalesOrder, allocation.order_id)
        record = OrderRecord(
            order.order_id,
            order.customer_id,
            order.order_date,
            order.amount,
            order.erp_open_amount,
            status="cancelled",
        )
    with session_scope(engine) as session:
        report = master.upsert_orders(
            session, [record], as_of=datetime(2024, 11, 1, tzinfo=UTC), actor="erp"
        )
        assert report.released, "cancelling a paid order releases its payments"
    return record.order_id


def _lines(session) -> list[StatementLine]:
    return list(
        session.exec(
            select(StatementLine)
            .where(StatementLine.status != "voided")
            .order_by(StatementLine.id)
        ).all()
    )


def test_reports_month_every_cent_in_one_place(engine, month):
    with Session(engine) as session:
        lines = _lines(session)
        places = reports.line_places(session, lines)

    assert lines, "the month imported no lines"
    for line in lines:
        found = {p: a for p, a in places[line.id].items() if a}
        assert sum(found.values(), ZERO) == line.amount, line.line_ref
        assert "difference" not in found, (line.line_ref, found)
        sign = 1 if line.amount > 0 else -1
        assert all(a * sign > 0 for a in found.values()), (line.line_ref, found)
    used = {p for line in lines for p, a in places[line.id].items() if a}
    assert {"order", "balance", "refund", "unmatched"} <= used


def test_reports_month_balances_match_ledger(engine, month):
    with Session(engine) as session:
        lines = _lines(session)
        places = reports.line_places(session, lines)
        entries = session.exec(select(LedgerEntry)).all()
        total = sum(ledger.balances(session).values(), ZERO)

    receipts: dict[int, Decimal] = defaultdict(lambda: ZERO)
    other = ZERO
    for entry in entries:
        if entry.allocation_id is not None:
            receipts[entry.line_id] += entry.amount
        else:
            other += entry.amount
    for line in lines:
        assert places[line.id].get("balance", ZERO) == receipts[line.id], line.line_ref
    on_balances = sum((p.get("balance", ZERO) for p in places.values()), ZERO)
    assert on_balances + other == total


def test_reports_month_orders_hold_what_was_paid(engine, month):
    with Session(engine) as session:
        allocations = session.exec(
            select(Allocation).where(Allocation.status == "confirmed")
        ).all()
        applied = session.exec(
            select(LedgerEntry).where(LedgerEntry.order_id.is_not(None))
        ).all()
        orders = {o.order_id: o for o in session.exec(select(SalesOrder)).all()}

    taken: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for allocation in allocations:
        if allocation.target in ("order", "fee"):
            taken[allocation.order_id] += allocation.amount
    for entry in applied:
        if entry.kind in ("application", "reversal"):
            taken[entry.order_id] -= entry.amount
    for order_id, export_open in month["export"].items():
        if order_id == month["cancelled"]:
            continue
        order = orders[order_id]
        assert export_open - order.open_amount == taken[order_id], order_id
    assert taken[month["cancelled"]] == ZERO


def test_reports_month_refunds_paid_out(engine, month):
    refunds = month["refunds"]
    with Session(engine) as session:
        requests = session.exec(select(LedgerRequest)).all()
        marked = session.get(StatementLine, refunds["marked_line"])
        lines = [
            session.get(StatementLine, refunds[k]) for k in refunds if "payment" in k
        ]
        places = reports.line_places(session, [marked, *lines])
        awaiting = reports.duplicates_awaiting_refund(session, as_of=TODAY)

    assert all(r.status == "approved" and r.payment_line_id for r in requests)
    assert places[marked.id] == {"refund": marked.amount}
    for line in lines:
        assert places[line.id] == {"refund": line.amount}
    assert marked.line_ref not in {row["line_ref"] for row in awaiting}


def test_reports_month_reconciliation_ties(engine, month):
    with Session(engine) as session:
        report = reports.reconciliation(session, account="default", month="2024-11")
        unmatched = reports.unmatched_rows(session, as_of=TODAY, account="default")

    kinds = {difference.kind for difference in report.differences}
    assert kinds <= {"no_statement_balance"}
    assert report.balance_allocations == report.ledger_receipts
    assert sum(report.places.values(), ZERO) == report.lines_total
    money_in = [r["amount"] for r in unmatched if r["direction"] == "money_in"]
    money_out = [r["amount"] for r in unmatched if r["direction"] == "money_out"]
    assert report.places["unmatched"] == sum(money_in, ZERO)
    assert report.places["unmatched_out"] == sum(money_out, ZERO)
