"""Audit sampling of automatic decisions and the precision estimate it gives."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import Allocation, Label, ReviewTask, StatementLine
from service import booking, master, review
from service.app import create_app
from service.auditing import (
    AUDIT_REASON,
    NotAnAudit,
    audit_draw,
    audit_summary,
    is_audit_task,
    is_sampled,
    record_verdict,
    sample_for_audit,
)
from service.booking import Part
from service.matching import LineOutcome, match_lines
from service.review import ReviewConflict
from service.serving import current_model
from service.settings import Settings
from training.metrics import wilson_interval


def _setup(session) -> None:
    master.upsert_customers(
        session, [CustomerRecord("C1", "恒达机械有限公司", bank_accounts=("6222001",))]
    )
    master.upsert_orders(
        session,
        [
            OrderRecord(
                f"SO-95{i:02d}",
                "C1",
                date(2025, 6, 1),
                Decimal("730.00"),
                Decimal("730.00"),
            )
            for i in range(1, 6)
        ],
    )


def _auto_line(session, ref: str, order_id: str) -> StatementLine:
    line = StatementLine(
        account="default",
        line_ref=ref,
        dedupe_key=f"key-{ref}",
        booking_date=date(2025, 6, 10),
        amount=Decimal("730.00"),
        counterparty_name="恒达机械有限公司",
        counterparty_account="6222001",
        memo=order_id,
        decision="auto",
        model_version="m-test",
    )
    session.add(line)
    session.flush()
    booking.confirm(
        session,
        line,
        [Part("order", Decimal("730.00"), "C1", order_id)],
        actor="matcher",
        decision="auto",
        model_version="m-test",
    )
    return line


def _audited(engine, count: int = 3) -> list[int]:
    """Book `count` automatic decisions and sample all of them for audit."""
    with session_scope(engine) as session:
        _setup(session)
        lines = [
            _auto_line(session, f"L{i}", f"SO-95{i:02d}") for i in range(1, count + 1)
        ]
        outcomes = [LineOutcome(line, None, "auto", []) for line in lines]
        tasks = sample_for_audit(session, outcomes, 1.0)
        return [task.id for task in tasks]


class _Line:
    def __init__(self, key: str):
        self.account = "default"
        self.dedupe_key = key


def test_sampling_is_fixed_per_line():
    line = _Line("k-1")

    assert audit_draw(line) == audit_draw(_Line("k-1"))
    assert 0.0 <= audit_draw(line) < 1.0
    assert not is_sampled(line, 0.0)
    assert is_sampled(line, 1.0)


def test_sampling_share_is_close_to_setting():
    sampled = sum(is_sampled(_Line(f"key-{i}"), 0.1) for i in range(4000))

    assert 320 <= sampled <= 480


def test_sample_for_audit_marks_task(engine):
    tasks = _audited(engine, 2)

    with Session(engine) as session:
        found = [session.get(ReviewTask, task_id) for task_id in tasks]
        lines = [session.get(StatementLine, task.line_id) for task in found]

    assert len(found) == 2
    assert all(is_audit_task(task) for task in found)
    assert all(task.reason == AUDIT_REASON for task in found)
    assert all(line.status == "allocated" for line in lines)


def test_sample_for_audit_skips_review_and_zero_share(engine):
    with session_scope(engine) as session:
        _setup(session)
        line = _auto_line(session, "L1", "SO-9501")
        review_outcome = LineOutcome(line, None, "review", [])
        auto_outcome = LineOutcome(line, None, "auto", [])

        assert sample_for_audit(session, [review_outcome], 1.0) == []
        assert sample_for_audit(session, [auto_outcome], 0.0) == []


def test_match_lines_samples_automatic_decisions(engine, tmp_path, cold_start_dir):
    settings = Settings(
        data_dir=tmp_path, cold_start_dir=cold_start_dir, audit_share=1.0
    )
    with session_scope(engine) as session:
        _setup(session)
        line = StatementLine(
            account="default",
            line_ref="M1",
            dedupe_key="key-M1",
            booking_date=date(2025, 6, 10),
            amount=Decimal("730.00"),
            counterparty_name="恒达机械有限公司",
            counterparty_account="6222001",
            memo="SO-9503",
        )
        session.add(line)
        session.flush()
        outcomes = match_lines(
            session, [line], current_model(session, settings), settings
        )
        tasks = session.exec(
            select(ReviewTask).where(ReviewTask.line_id == line.id)
        ).all()

    assert outcomes[0].decision == "auto"
    assert [task.reason for task in tasks] == [AUDIT_REASON]


def test_verdict_right_keeps_booking(engine):
    task_id = _audited(engine, 1)[0]

    with session_scope(engine) as session:
        outcome = record_verdict(session, task_id, actor="clerk-a", right=True)

    assert outcome.task.status == "decided"
    assert outcome.line.status == "allocated"
    assert outcome.label.action == "audit_right"
    assert outcome.label.chosen["allocations"][0]["order_id"] == "SO-9501"
    assert outcome.requeued_task is None


def test_verdict_wrong_requeues_line(engine):
    task_id = _audited(engine, 1)[0]

    with session_scope(engine) as session:
        outcome = record_verdict(
            session, task_id, actor="clerk-a", right=False, note="paid SO-9502"
        )
        requeued = outcome.requeued_task.id
        reversed_rows = session.exec(
            select(Allocation).where(Allocation.status == "reversed")
        ).all()

    assert outcome.line.status == "review"
    assert outcome.label.action == "audit_wrong"
    assert requeued != task_id
    assert len(reversed_rows) == 1


def test_verdict_wrong_with_allocations_rebooks(engine):
    task_id = _audited(engine, 1)[0]
    parts = [Part("balance", Decimal("730.00"), "C1")]

    with session_scope(engine) as session:
        outcome = record_verdict(
            session, task_id, actor="clerk-a", right=False, parts=parts
        )
        confirmed = session.exec(
            select(Allocation).where(
                Allocation.line_id == outcome.line.id, Allocation.status == "confirmed"
            )
        ).all()

    assert outcome.line.status == "allocated"
    assert [(a.target, a.amount) for a in confirmed] == [("balance", Decimal("730.00"))]


def test_verdict_twice_conflicts(engine):
    task_id = _audited(engine, 1)[0]
    with session_scope(engine) as session:
        record_verdict(session, task_id, actor="clerk-a", right=True)

    with (
        session_scope(engine) as session,
        pytest.raises(ReviewConflict, match="decided"),
    ):
        record_verdict(session, task_id, actor="clerk-b", right=False)


def test_verdict_on_ordinary_task_refused(engine):
    with session_scope(engine) as session:
        _setup(session)
        line = _auto_line(session, "L1", "SO-9501")
        task = ReviewTask(line_id=line.id, reason="low confidence")
        session.add(task)
        session.flush()

        with pytest.raises(NotAnAudit, match="not an audit"):
            record_verdict(session, task.id, actor="clerk-a", right=True)


def test_precision_estimate_counts_verdicts(engine):
    tasks = _audited(engine, 5)
    with session_scope(engine) as session:
        for task_id in tasks[:3]:
            record_verdict(session, task_id, actor="clerk-a", right=True)
        record_verdict(session, tasks[3], actor="clerk-a", right=False)

    with Session(engine) as session:
        summary = audit_summary(session)

    assert (summary.right, summary.wrong, summary.pending) == (3, 1, 1)
    assert summary.precision.value == 0.75
    assert summary.precision.interval == wilson_interval(3, 4)
    assert summary.by_model["m-test"].total == 4


def test_precision_estimate_undone_line_is_wrong(engine):
    task_id = _audited(engine, 1)[0]
    with session_scope(engine) as session:
        line_id = session.get(ReviewTask, task_id).line_id
        review.reverse_line(
            session,
            line_id,
            actor="clerk-a",
            reason="wrong order",
            expected_version=None,
        )

    with Session(engine) as session:
        summary = audit_summary(session)
        labels = session.exec(select(Label.action)).all()

    assert (summary.right, summary.wrong, summary.pending) == (0, 1, 0)
    assert labels == ["undo"]


def test_audit_api_records_verdict(engine, tmp_path, cold_start_dir, keys):
    tasks = _audited(engine, 2)
    settings = Settings(data_dir=tmp_path, cold_start_dir=cold_start_dir)
    app = create_app(settings, engine=engine, review_page=False)

    with TestClient(app) as client:
        right = client.post(
            f"/v1/audits/{tasks[0]}", json={"verdict": "right"}, headers=keys["clerk"]
        )
        wrong = client.post(
            f"/v1/audits/{tasks[1]}",
            json={"verdict": "wrong", "note": "other order"},
            headers=keys["clerk"],
        )
        again = client.post(
            f"/v1/audits/{tasks[1]}", json={"verdict": "right"}, headers=keys["clerk"]
        )
        analyst = client.post(
            f"/v1/audits/{tasks[0]}", json={"verdict": "right"}, headers=keys["analyst"]
        )
        summary = client.get("/v1/audits", headers=keys["analyst"]).json()

    assert right.status_code == 200, right.text
    assert right.json()["line_status"] == "allocated"
    assert wrong.status_code == 200, wrong.text
    assert wrong.json()["line_status"] == "review"
    assert wrong.json()["requeued_task_id"] is not None
    assert again.status_code == 409
    assert analyst.status_code == 403
    assert summary["right"] == 1
    assert summary["wrong"] == 1
    assert summary["precision"]["value"] == 0.5
    assert summary["precision"]["low"] == pytest.approx(wilson_interval(1, 2)[0])


def test_queue_accept_on_audit_task_is_right_verdict(engine):
    [task_id] = _audited(engine, 1)

    with session_scope(engine) as session:
        outcome = review.decide(
            session, task_id, review.ReviewDecision(action="accept"), actor="clerk-a"
        )

    assert outcome.line.status == "allocated"
    with Session(engine) as session:
        summary = audit_summary(session)
        confirmed = session.exec(
            select(Allocation).where(Allocation.status == "confirmed")
        ).all()
    assert summary.right == 1
    assert len(confirmed) == 1


def test_queue_other_choice_on_audit_task_is_wrong_verdict(engine):
    [task_id] = _audited(engine, 1)
    parts = [Part("balance", Decimal("730.00"), "C1")]

    with session_scope(engine) as session:
        review.decide(
            session,
            task_id,
            review.ReviewDecision(action="split", parts=parts),
            actor="clerk-a",
        )

    with Session(engine) as session:
        summary = audit_summary(session)
        booked = session.exec(
            select(Allocation).where(Allocation.status == "confirmed")
        ).all()
    assert summary.wrong == 1
    assert [(a.target, a.amount) for a in booked] == [("balance", Decimal("730.00"))]
