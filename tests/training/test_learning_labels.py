"""Labelled lines read from the database: truth, hard negatives, what is left out."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import ImportBatch, ReviewTask, SalesOrder, StatementLine
from service import booking, master, review
from service.booking import Part
from service.review import ReviewDecision
from service.voiding import void_batch
from training.labels import (
    NO_MATCH_KEY,
    candidate_view_key,
    collect_labels,
    count_labelled_lines,
    labels_from_case,
)


def _view(customer_id, orders=(), balance="0.00", kind="reference"):
    return {
        "kind": kind,
        "customer_id": customer_id,
        "orders": [[order_id, amount] for order_id, amount in orders],
        "balance": balance,
        "fees": [],
        "reasons": [],
        "score": 1.0,
    }


def _order(order_id, customer_id, day, amount):
    return OrderRecord(
        order_id, customer_id, date(2025, 6, day), Decimal(amount), Decimal(amount)
    )


def _setup(session) -> int:
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
            _order("SO-1", "C1", 1, "300.00"),
            _order("SO-2", "C1", 2, "200.00"),
            _order("SO-3", "C2", 3, "500.00"),
            _order("SO-4", "C2", 4, "120.00"),
            _order("SO-5", "C1", 5, "80.00"),
        ],
    )
    batch = ImportBatch(
        file_name="june.csv", file_sha256="0" * 64, format="csv", account="default"
    )
    session.add(batch)
    session.flush()
    return batch.id


def _line(session, ref, amount, *, day, batch_id=None, shown=(), decision="review"):
    line = StatementLine(
        account="default",
        line_ref=ref,
        dedupe_key=f"key-{ref}",
        booking_date=date(2025, 6, day),
        amount=Decimal(amount),
        counterparty_name="恒达机械有限公司",
        memo=f"memo {ref}",
        status="review" if decision == "review" else "new",
        decision=decision,
        confidence=0.5,
        model_version="m-test",
        batch_id=batch_id,
        suggestion={"reasons": [], "candidates": list(shown)},
    )
    session.add(line)
    session.flush()
    return line


def _review(session, line, action, **fields):
    """Propose the first shown candidate, open a task, decide it."""
    shown = line.suggestion["candidates"]
    booking.propose(
        session,
        line,
        review.decision_parts(line, ReviewDecision("accept"), shown),
        confidence=0.5,
        decision="review",
        model_version="m-test",
    )
    task = ReviewTask(line_id=line.id)
    session.add(task)
    session.flush()
    return review.decide(
        session, task.id, ReviewDecision(action, **fields), actor="clerk"
    )


def _auto(session, line, parts):
    booking.confirm(
        session, line, parts, actor="matcher", decision="auto", model_version="m-test"
    )


@pytest.fixture
def labelled(engine):
    """Lines of every kind a label can come from or be left out for."""
    ids = {}
    with session_scope(engine) as session:
        batch_id = _setup(session)
        line = _line(session, "AUTO", "300.00", day=10, decision="auto")
        _auto(session, line, [Part("order", Decimal("300.00"), "C1", "SO-1")])
        ids["auto"] = line.id

        shown = [
            _view("C1", [("SO-5", "80.00")], balance="120.00"),
            _view("C1", [("SO-2", "200.00")]),
        ]
        line = _line(session, "CORRECTED", "200.00", day=11, shown=shown)
        _review(session, line, "choose", candidate=1)
        ids["corrected"] = line.id

        shown = [_view("C2", [("SO-3", "500.00")]), _view("C1", balance="500.00")]
        line = _line(session, "ACCEPTED", "500.00", day=12, shown=shown)
        _review(session, line, "accept")
        ids["accepted"] = line.id

        shown = [_view("C1", balance="55.55", kind="balance")]
        line = _line(session, "NONE", "55.55", day=13, shown=shown)
        _review(session, line, "not_customer")
        ids["none"] = line.id

        shown = [_view("C2", [("SO-4", "120.00")])]
        line = _line(session, "UNDONE", "120.00", day=14, shown=shown)
        _review(session, line, "accept")
        review.reverse_line(
            session, line.id, actor="clerk", reason="wrong", expected_version=None
        )
        ids["undone"] = line.id

        shown = [_view("C1", balance="100.00", kind="balance")]
        line = _line(session, "REDONE", "100.00", day=15, shown=shown)
        _review(session, line, "accept")
        again = review.reverse_line(
            session,
            line.id,
            actor="clerk",
            reason="other customer",
            expected_version=None,
        )
        review.decide(
            session,
            again.task.id,
            ReviewDecision("balance", customer_id="C2"),
            actor="clerk",
        )
        ids["redone"] = line.id

        line = _line(
            session, "VOIDED", "60.00", day=16, batch_id=batch_id, decision="auto"
        )
        _auto(session, line, [Part("balance", Decimal("60.00"), "C2")])
        ids["voided"] = line.id

        line = _line(session, "CANCELLED", "80.00", day=17, decision="auto")
        _auto(session, line, [Part("order", Decimal("80.00"), "C1", "SO-5")])
        ids["cancelled"] = line.id

        out = _line(session, "OUT", "-30.00", day=18, decision="unmatched")
        out.status = "unmatched"
        ids["out"] = out.id

    with session_scope(engine) as session:
        void_batch(session, batch_id, actor="admin", reason="imported twice")
        order = session.get(SalesOrder, "SO-5")
        order.status = "cancelled"
        session.add(order)
        session.flush()
        master.release_cancelled_order(session, "SO-5", actor="erp")
    return ids


def _by_id(labels):
    return {line.line_id: line for line in labels.lines}


def test_collect_labels_keeps_settled_lines(engine, labelled):
    with Session(engine) as session:
        labels = collect_labels(session)

    kept = set(_by_id(labels))

    expected = {"auto", "corrected", "accepted", "none", "redone"}
    assert kept == {labelled[name] for name in expected}


def test_collect_labels_counts_left_out(engine, labelled):
    with Session(engine) as session:
        counts = collect_labels(session).counts

    assert counts.lines == 5
    assert counts.withdrawn_labels == 2
    assert counts.voided_lines == 1
    assert counts.cancelled_order_lines == 1
    assert counts.no_match == 1
    assert counts.allocated == 4


@pytest.mark.parametrize(
    ("name", "source"),
    [
        pytest.param("auto", "auto", id="auto"),
        pytest.param("corrected", "review", id="corrected"),
        pytest.param("none", "review", id="no-match"),
        pytest.param("redone", "review", id="redone"),
    ],
)
def test_collect_labels_source(engine, labelled, name, source):
    with Session(engine) as session:
        line = _by_id(collect_labels(session))[labelled[name]]

    assert line.source == source


def test_collect_labels_replaced_proposal_is_hard_negative(engine, labelled):
    with Session(engine) as session:
        line = _by_id(collect_labels(session))[labelled["corrected"]]

    replaced = ("C1", (("SO-5", 8000),), 12000)
    assert line.truth_key == ("C1", (("SO-2", 20000),), 0)
    assert line.corrected
    assert replaced in line.rejected
    assert replaced in line.hard_negatives
    assert line.truth_key not in line.hard_negatives


def test_collect_labels_accepted_proposal_is_no_negative(engine, labelled):
    with Session(engine) as session:
        line = _by_id(collect_labels(session))[labelled["accepted"]]

    assert not line.corrected
    assert line.hard_negatives == [("C1", (), 50000)]
    assert line.shown == [("C2", (("SO-3", 50000),), 0), ("C1", (), 50000)]


def test_collect_labels_no_match_truth(engine, labelled):
    with Session(engine) as session:
        line = _by_id(collect_labels(session))[labelled["none"]]

    assert line.truth == []
    assert line.truth_key == NO_MATCH_KEY
    assert line.kind == "none"
    assert line.corrected
    assert line.truth_rows()[0]["target"] == "none"


def test_collect_labels_undone_booking_is_hard_negative(engine, labelled):
    with Session(engine) as session:
        line = _by_id(collect_labels(session))[labelled["redone"]]

    assert line.truth_key == ("C2", (), 10000)
    assert ("C1", (), 10000) in line.rejected
    assert line.corrected
    assert line.kind == "balance"


def test_collect_labels_case_data_reopens_later_orders(engine, labelled):
    with Session(engine) as session:
        labels = collect_labels(session)
    first = [line for line in labels.lines if line.line_id == labelled["auto"]]

    data = labels.case_data(first)

    orders = {order.order_id: order for order in data.orders}
    assert orders["SO-2"].open_amount == Decimal("200.00")
    assert orders["SO-3"].open_amount == Decimal("500.00")
    assert orders["SO-1"].open_amount == Decimal("0.00")
    assert [line.line_ref for line in data.history_lines] == [str(labelled["auto"])]


def test_count_labelled_lines_matches_statuses(engine, labelled):
    with Session(engine) as session:
        # The cancelled order's line is still allocated, so it is counted
        # here although training leaves it out.
        assert count_labelled_lines(session) == 6


@pytest.mark.parametrize(
    ("view", "key"),
    [
        pytest.param(
            _view("C1", [("SO-1", "300.00")]), ("C1", (("SO-1", 30000),), 0), id="order"
        ),
        pytest.param(
            _view("C1", [("SO-2", "20.00"), ("SO-1", "10.00")], balance="5.00"),
            ("C1", (("SO-1", 1000), ("SO-2", 2000)), 500),
            id="orders-and-balance",
        ),
        pytest.param(_view(None, kind="none"), NO_MATCH_KEY, id="none"),
        pytest.param(_view("C1", kind="none"), NO_MATCH_KEY, id="none-with-customer"),
    ],
)
def test_candidate_view_key(view, key):
    assert candidate_view_key(view) == key


def test_labels_from_case_keeps_money_in(engine):
    from ingest.records import AllocationRecord, StatementRecord
    from training.case import CaseData

    lines = [
        StatementRecord("A", date(2025, 6, 2), Decimal("10.00"), "CNY"),
        StatementRecord("B", date(2025, 6, 1), Decimal("20.00"), "CNY"),
        StatementRecord("C", date(2025, 6, 3), Decimal("-5.00"), "CNY"),
    ]
    data = CaseData(
        customers=[],
        orders=[],
        history_lines=lines,
        history_allocations=[
            AllocationRecord("B", "C1", "", "balance", Decimal("20.00"))
        ],
    )

    labels = labels_from_case(data)

    assert [line.line_ref for line in labels.lines] == ["B", "A"]
    assert labels.lines[0].truth_key == ("C1", (), 2000)
    assert labels.lines[1].truth_key == NO_MATCH_KEY
    assert labels.counts.by_source == {"history": 2}


def test_collect_labels_reads_no_open_lines(engine, labelled):
    with Session(engine) as session:
        undone = session.get(StatementLine, labelled["undone"])
        kept = {line.line_id for line in collect_labels(session).lines}
        statuses = set(session.exec(select(StatementLine.status)).all())

    assert undone.status == "review"
    assert undone.id not in kept
    assert "voided" in statuses
