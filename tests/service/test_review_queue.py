"""Review tasks: queue order and filters, claims, decisions, labels and undo."""

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.errors import AllocationConflict
from models.tables import (
    Allocation,
    AuditEvent,
    Label,
    ReviewTask,
    SalesOrder,
    StatementLine,
)
from service import booking, master, review
from service.booking import InvalidAllocation, Part
from service.review import ReviewConflict, ReviewDecision, TaskFilter


def _candidate(customer_id, orders=(), balance="0.00", kind="reference", score=1.0):
    return {
        "kind": kind,
        "customer_id": customer_id,
        "orders": [[order_id, amount] for order_id, amount in orders],
        "balance": balance,
        "fees": [],
        "reasons": [f"{kind} candidate"],
        "score": score,
    }


def _setup(engine):
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
                    "SO-1", "C1", date(2025, 6, 1), Decimal("300.00"), Decimal("300.00")
                ),
                OrderRecord(
                    "SO-2", "C1", date(2025, 6, 2), Decimal("200.00"), Decimal("200.00")
                ),
                OrderRecord(
                    "SO-3", "C2", date(2025, 6, 3), Decimal("500.00"), Decimal("500.00")
                ),
            ],
        )


def _task(
    engine,
    ref,
    amount,
    *,
    candidates,
    confidence=0.5,
    account="default",
    day=date(2025, 6, 10),
    reasons=(),
    score=0.1,
    decision="review",
) -> tuple[int, int]:
    """Store a line waiting for review with the candidates it shows."""
    with session_scope(engine) as session:
        line = StatementLine(
            account=account,
            line_ref=ref,
            dedupe_key=f"k-{account}-{ref}",
            booking_date=day,
            amount=Decimal(amount),
            counterparty_name="恒达机械有限公司",
            counterparty_account="6222001",
            memo=f"memo {ref}",
            status=decision,
            decision=decision,
            confidence=confidence,
            anomaly_score=score,
            anomaly_reasons=list(reasons),
            model_version="m-test",
            suggestion={"reasons": ["test"], "candidates": candidates},
        )
        session.add(line)
        session.flush()
        task = ReviewTask(
            line_id=line.id,
            priority=float(amount) * (1.05 - confidence),
            created_at=datetime(2025, 6, 11, tzinfo=UTC),
        )
        session.add(task)
        session.flush()
        return line.id, task.id


def _decide(engine, task_id, decision, actor="clerk-a", **kwargs):
    with session_scope(engine) as session:
        return review.decide(session, task_id, decision, actor=actor, **kwargs)


def _open_amount(engine, order_id):
    with Session(engine) as session:
        return session.get(SalesOrder, order_id).open_amount


def _confirmed(engine, line_id):
    with Session(engine) as session:
        return session.exec(
            select(Allocation).where(
                Allocation.line_id == line_id, Allocation.status == "confirmed"
            )
        ).all()


@pytest.fixture
def queue(engine):
    """Three tasks differing in amount, age, confidence and anomalies."""
    _setup(engine)
    return {
        "big": _task(
            engine,
            "B",
            "500.00",
            candidates=[_candidate("C2", [("SO-3", "500.00")])],
            confidence=0.9,
            day=date(2025, 6, 12),
        ),
        "old": _task(
            engine,
            "O",
            "100.00",
            candidates=[_candidate("C1", [("SO-2", "100.00")])],
            confidence=0.6,
            day=date(2025, 6, 1),
            account="bank-2",
        ),
        "doubt": _task(
            engine,
            "D",
            "300.00",
            candidates=[_candidate("C1", [("SO-1", "300.00")])],
            confidence=0.1,
            reasons=("duplicate",),
            decision="unmatched",
        ),
    }


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        pytest.param("priority", ["doubt", "big", "old"], id="priority"),
        pytest.param("amount", ["big", "doubt", "old"], id="amount"),
        pytest.param("age", ["old", "doubt", "big"], id="age"),
        pytest.param("uncertainty", ["doubt", "old", "big"], id="uncertainty"),
    ],
)
def test_list_tasks_sort(engine, queue, sort, expected):
    with Session(engine) as session:
        page = review.list_tasks(session, sort=sort)

    names = {task_id: name for name, (_, task_id) in queue.items()}
    assert [names[task.id] for task, _ in page.items] == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param(TaskFilter(account="bank-2"), {"old"}, id="account"),
        pytest.param(TaskFilter(customer_id="C2"), {"big"}, id="customer"),
        pytest.param(
            TaskFilter(min_amount=Decimal(200), max_amount=Decimal(400)),
            {"doubt"},
            id="amount-range",
        ),
        pytest.param(
            TaskFilter(date_from=date(2025, 6, 5)), {"big", "doubt"}, id="date"
        ),
        pytest.param(TaskFilter(anomaly="flagged"), {"doubt"}, id="flagged"),
        pytest.param(TaskFilter(anomaly="duplicate"), {"doubt"}, id="reason"),
        pytest.param(TaskFilter(decision="unmatched"), {"doubt"}, id="decision"),
    ],
)
def test_list_tasks_filter(engine, queue, filters, expected):
    with Session(engine) as session:
        page = review.list_tasks(session, filters)

    names = {task_id: name for name, (_, task_id) in queue.items()}
    assert {names[task.id] for task, _ in page.items} == expected
    assert page.total == len(expected)


def test_list_tasks_counts(engine, queue):
    with Session(engine) as session:
        page = review.list_tasks(session, limit=1)

    assert len(page.items) == 1
    assert page.total == 3
    assert page.counts["decision"] == {"review": 2, "unmatched": 1}
    assert page.counts["account"] == {"default": 2, "bank-2": 1}
    assert page.counts["anomaly"] == {"flagged": 1, "not_flagged": 2}


def test_claim_blocks_other_clerk(engine, queue):
    _, task_id = queue["big"]
    with session_scope(engine) as session:
        review.claim(session, task_id, actor="clerk-a", minutes=15)

    with (
        pytest.raises(ReviewConflict, match="claimed by clerk-a"),
        session_scope(engine) as session,
    ):
        review.claim(session, task_id, actor="clerk-b", minutes=15)


def test_claim_expired_can_be_taken(engine, queue):
    _, task_id = queue["big"]
    past = datetime.now(UTC) - timedelta(minutes=30)
    with session_scope(engine) as session:
        review.claim(session, task_id, actor="clerk-a", minutes=15, now=past)

    with session_scope(engine) as session:
        task = review.claim(session, task_id, actor="clerk-b", minutes=15)

    assert task.claimed_by == "clerk-b"


def test_claim_next_skips_claimed(engine, queue):
    with session_scope(engine) as session:
        first = review.claim_next(session, actor="clerk-a", minutes=15)
    with session_scope(engine) as session:
        second = review.claim_next(session, actor="clerk-b", minutes=15)

    assert first.id == queue["doubt"][1]
    assert second.id == queue["big"][1]


def test_claim_next_concurrent_gets_different_tasks(engine, queue):
    claimed = {}

    def claim_b():
        with session_scope(engine) as session:
            claimed["b"] = review.claim_next(session, actor="clerk-b", minutes=15).id

    with session_scope(engine) as session:
        claimed["a"] = review.claim_next(session, actor="clerk-a", minutes=15).id
        other = threading.Thread(target=claim_b)
        other.start()
        # clerk-a's transaction is still open here: PostgreSQL skips its
        # locked row, SQLite makes clerk-b wait for the commit.
        other.join(timeout=0.5)
    other.join()

    assert claimed["a"] != claimed["b"]


def test_decide_accept_books_and_keeps_label(engine, queue):
    line_id, task_id = queue["doubt"]

    outcome = _decide(engine, task_id, ReviewDecision("accept"), expected_version=1)

    assert [a.order_id for a in outcome.allocations] == ["SO-1"]
    assert _open_amount(engine, "SO-1") == Decimal("0.00")
    with Session(engine) as session:
        label = session.exec(select(Label).where(Label.line_id == line_id)).one()
        task = session.get(ReviewTask, task_id)
        audit = session.exec(
            select(AuditEvent).where(AuditEvent.action == "review_accept")
        ).one()
    assert label.action == "accept"
    assert label.chosen["candidate"] == 0
    assert label.candidates[0]["orders"] == [["SO-1", "300.00"]]
    assert label.review_task_id == task_id
    assert task.status == "decided"
    assert task.decided_by == "clerk-a"
    assert audit.detail["label_id"] == label.id


def test_decide_choose_other_candidate(engine):
    _setup(engine)
    line_id, task_id = _task(
        engine,
        "L",
        "200.00",
        candidates=[
            _candidate("C1", [("SO-1", "200.00")]),
            _candidate("C1", [("SO-2", "200.00")]),
        ],
    )

    _decide(engine, task_id, ReviewDecision("choose", candidate=1))

    assert [a.order_id for a in _confirmed(engine, line_id)] == ["SO-2"]
    with Session(engine) as session:
        label = session.exec(select(Label)).one()
    assert label.chosen["candidate"] == 1
    assert len(label.candidates) == 2


def test_decide_split_across_orders_and_balance(engine):
    _setup(engine)
    line_id, task_id = _task(
        engine, "S", "550.00", candidates=[_candidate("C1", [("SO-1", "300.00")])]
    )
    parts = (
        Part("order", Decimal("300.00"), "C1", "SO-1"),
        Part("order", Decimal("200.00"), "C1", "SO-2"),
        Part("balance", Decimal("50.00"), "C1"),
    )

    _decide(engine, task_id, ReviewDecision("split", parts=parts))

    assert _open_amount(engine, "SO-1") == Decimal("0.00")
    assert _open_amount(engine, "SO-2") == Decimal("0.00")
    with Session(engine) as session:
        assert booking.balance_of(session, "C1") == Decimal("50.00")
    assert sorted(a.target for a in _confirmed(engine, line_id)) == [
        "balance",
        "order",
        "order",
    ]


def test_decide_split_wrong_sum_changes_nothing(engine):
    _setup(engine)
    _, task_id = _task(
        engine, "S", "550.00", candidates=[_candidate("C1", [("SO-1", "300.00")])]
    )
    parts = (Part("order", Decimal("300.00"), "C1", "SO-1"),)

    with pytest.raises(InvalidAllocation, match="add up to 300.00"):
        _decide(engine, task_id, ReviewDecision("split", parts=parts))

    assert _open_amount(engine, "SO-1") == Decimal("300.00")
    with Session(engine) as session:
        assert session.get(ReviewTask, task_id).status == "open"
        assert session.exec(select(Label)).all() == []


def test_decide_balance_for_named_customer(engine):
    _setup(engine)
    line_id, task_id = _task(
        engine,
        "P",
        "80.00",
        candidates=[_candidate(None, kind="none")],
        decision="unmatched",
    )

    _decide(engine, task_id, ReviewDecision("balance", customer_id="C2"))

    with Session(engine) as session:
        assert booking.balance_of(session, "C2") == Decimal("80.00")
        assert session.get(StatementLine, line_id).customer_id == "C2"


def test_decide_accept_no_match_is_invalid(engine):
    _setup(engine)
    _, task_id = _task(engine, "N", "80.00", candidates=[_candidate(None, kind="none")])

    with pytest.raises(InvalidAllocation, match="'no match'"):
        _decide(engine, task_id, ReviewDecision("accept"))


@pytest.mark.parametrize("action", ["not_customer", "refund"])
def test_decide_without_booking(engine, action):
    _setup(engine)
    line_id, task_id = _task(
        engine, "X", "80.00", candidates=[_candidate("C1", [("SO-1", "80.00")])]
    )

    outcome = _decide(engine, task_id, ReviewDecision(action, note="salary refund"))

    assert outcome.allocations == []
    assert outcome.line.status == action
    assert _confirmed(engine, line_id) == []
    assert outcome.label.chosen["note"] == "salary refund"


def test_decide_claimed_by_other_is_conflict(engine, queue):
    _, task_id = queue["doubt"]
    with session_scope(engine) as session:
        review.claim(session, task_id, actor="clerk-a", minutes=15)

    with pytest.raises(ReviewConflict, match="claimed by clerk-a"):
        _decide(engine, task_id, ReviewDecision("accept"), actor="clerk-b")


def test_decide_twice_is_conflict(engine, queue):
    _, task_id = queue["doubt"]
    _decide(engine, task_id, ReviewDecision("accept"))

    with pytest.raises(ReviewConflict, match="already decided"):
        _decide(engine, task_id, ReviewDecision("accept"), actor="clerk-b")


def test_decide_stale_line_version_is_conflict(engine, queue):
    _, task_id = queue["doubt"]

    with pytest.raises(AllocationConflict, match="reload it"):
        _decide(engine, task_id, ReviewDecision("accept"), expected_version=9)


def test_undo_reverses_and_reopens(engine, queue):
    line_id, task_id = queue["doubt"]
    _decide(engine, task_id, ReviewDecision("accept"))

    with session_scope(engine) as session:
        outcome = review.reverse_line(
            session,
            line_id,
            actor="clerk-a",
            reason="wrong order",
            expected_version=None,
        )

    assert outcome.line.status == "review"
    assert _open_amount(engine, "SO-1") == Decimal("300.00")
    assert _confirmed(engine, line_id) == []
    with Session(engine) as session:
        tasks = session.exec(
            select(ReviewTask)
            .where(ReviewTask.line_id == line_id)
            .order_by(ReviewTask.id)
        ).all()
        actions = [
            label.action for label in session.exec(select(Label).order_by(Label.id))
        ]
    assert [task.status for task in tasks] == ["decided", "open"]
    assert actions == ["accept", "undo"]


def test_undo_not_customer_reopens(engine):
    _setup(engine)
    line_id, task_id = _task(
        engine, "X", "80.00", candidates=[_candidate("C1", [("SO-1", "80.00")])]
    )
    _decide(engine, task_id, ReviewDecision("not_customer"))

    with session_scope(engine) as session:
        outcome = review.reverse_line(
            session,
            line_id,
            actor="clerk-a",
            reason="it was a customer",
            expected_version=None,
        )

    assert outcome.line.status == "review"
    assert outcome.task.status == "open"


def test_undo_open_line_is_invalid(engine, queue):
    line_id, _ = queue["doubt"]

    with (
        pytest.raises(InvalidAllocation, match="can be undone"),
        session_scope(engine) as session,
    ):
        review.reverse_line(
            session, line_id, actor="clerk-a", reason="x", expected_version=None
        )


def test_task_context_shows_orders_balance_history(engine, queue):
    line_id, _ = queue["doubt"]

    with Session(engine) as session:
        line = session.get(StatementLine, line_id)
        context = review.task_context(session, line)

    assert context["customer"].customer_id == "C1"
    assert [order.order_id for order in context["open_orders"]] == ["SO-1", "SO-2"]
    assert context["balance"] == Decimal("0.00")
    assert {earlier.line_ref for earlier in context["earlier_lines"]} == {"O"}
