"""The review page's views and actions, without a browser."""

from datetime import date
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import AuditEvent, ReviewTask, StatementLine
from review_ui import views
from review_ui.app import SHORTCUTS, page_head
from service import master, review
from service.auth import upsert_user
from service.booking import Part
from service.review import ReviewDecision, TaskFilter

PASSWORD = "clerk-password-1"


@pytest.fixture
def task(engine) -> tuple[int, int]:
    """A line of 500.00 waiting for review, with two candidates."""
    with session_scope(engine) as session:
        master.upsert_customers(session, [CustomerRecord("C1", "恒达机械有限公司")])
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    "SO-1", "C1", date(2025, 6, 1), Decimal("300.00"), Decimal("300.00")
                ),
                OrderRecord(
                    "SO-2", "C1", date(2025, 6, 2), Decimal("200.00"), Decimal("200.00")
                ),
            ],
        )
        upsert_user(session, "clerk-li", role="clerk", password=PASSWORD)
        upsert_user(session, "clerk-wang", role="clerk", password=PASSWORD)
        upsert_user(session, "analyst-zhao", role="analyst", password=PASSWORD)
        upsert_user(session, "admin-wu", role="admin", password=PASSWORD)
        line = StatementLine(
            account="default",
            line_ref="B-2",
            dedupe_key="k1",
            booking_date=date(2025, 6, 11),
            amount=Decimal("500.00"),
            counterparty_name="=cmd|' /C calc'!A0",
            memo="<b>6月货款</b>",
            status="review",
            decision="review",
            confidence=0.4,
            suggestion={
                "reasons": ["to the prepayment balance"],
                "candidates": [
                    {
                        "kind": "balance",
                        "customer_id": "C1",
                        "orders": [],
                        "balance": "500.00",
                        "fees": [],
                        "reasons": ["to the prepayment balance"],
                        "score": -6.1,
                    },
                    {
                        "kind": "combination",
                        "customer_id": "C1",
                        "orders": [["SO-1", "300.00"], ["SO-2", "200.00"]],
                        "balance": "0.00",
                        "fees": [],
                        "reasons": ["SO-1 + SO-2 = amount"],
                        "score": -6.5,
                    },
                ],
            },
        )
        session.add(line)
        session.flush()
        task = ReviewTask(line_id=line.id, priority=300.0)
        session.add(task)
        session.flush()
        return line.id, task.id


@pytest.mark.parametrize(
    ("name", "password", "signed_in", "message"),
    [
        pytest.param(
            "clerk-li", PASSWORD, True, "已登录：clerk-li（clerk）", id="clerk"
        ),
        pytest.param(
            "clerk-li", "wrong-password", False, "用户名或密码错误", id="wrong-password"
        ),
        pytest.param("nobody", PASSWORD, False, "用户名或密码错误", id="unknown-user"),
        pytest.param(
            "analyst-zhao",
            PASSWORD,
            False,
            "角色 analyst 不能处理审核任务",
            id="analyst",
        ),
    ],
)
def test_sign_in_clerk(engine, task, name, password, signed_in, message):
    clerk, shown = views.sign_in_clerk(engine, name, password, "zh")

    assert (clerk is not None) is signed_in
    assert shown == message


def test_parse_filters_reads_fields():
    parsed = views.parse_filters(
        "bank-1", "", "100", "200.50", "2025-06-01", "", "flagged"
    )

    assert parsed == TaskFilter(
        account="bank-1",
        min_amount=Decimal(100),
        max_amount=Decimal("200.50"),
        date_from=date(2025, 6, 1),
        anomaly="flagged",
    )


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        pytest.param(
            ("", "", "abc", "", "", "", "all"), "minimum amount 'abc'", id="amount"
        ),
        pytest.param(("", "", "", "", "30/06/2025", "", "all"), "from date", id="date"),
    ],
)
def test_parse_filters_bad_field(fields, match):
    with pytest.raises(ValueError, match=match):
        views.parse_filters(*fields)


def test_parse_split_rows():
    parts = views.parse_split(
        "SO-1 300.00\nbalance 150.00\n\nfee SO-2 5.00", "C1", "en"
    )

    assert parts == (
        Part("order", Decimal("300.00"), "C1", "SO-1"),
        Part("balance", Decimal("150.00"), "C1"),
        Part("fee", Decimal("5.00"), "C1", "SO-2"),
    )


@pytest.mark.parametrize("row", ["SO-1", "SO-1 3.001", "SO-1 abc", "a b c d"])
def test_parse_split_bad_row(row):
    with pytest.raises(ValueError, match="Cannot read split row 1"):
        views.parse_split(row, "C1", "en")


@pytest.mark.parametrize(
    ("language", "header"),
    [
        pytest.param("zh", "付款人", id="zh"),
        pytest.param("en", "Counterparty", id="en"),
    ],
)
def test_queue_table_in_language(engine, task, language, header):
    table, counts = views.queue_table(engine, TaskFilter(), "priority", language)

    assert header in table.columns
    assert table.iloc[0, 1] == "B-2"
    assert "1" in counts


def test_task_view_keeps_payer_text_plain(engine, task):
    _, task_id = task

    view = views.task_view(engine, task_id, "en")

    values = dict(zip(view.line.iloc[:, 0], view.line.iloc[:, 1]))
    assert values["Memo"] == "<b>6月货款</b>"
    assert values["Counterparty"] == "=cmd|' /C calc'!A0"
    assert list(view.candidates.iloc[:, 0]) == ["0", "1"]
    assert view.candidates.iloc[1, 3] == "SO-1 300.00, SO-2 200.00"
    assert list(view.open_orders.iloc[:, 0]) == ["SO-1", "SO-2"]
    assert view.balance == "C1 恒达机械有限公司: 0.00"
    assert view.customer_id == "C1"


def test_decide_choose_books_candidate(engine, task):
    line_id, task_id = task
    clerk = views.Clerk("clerk-li", "clerk")

    message = views.decide(
        engine,
        clerk,
        task_id,
        ReviewDecision("choose", candidate=1),
        version=1,
        language="en",
    )

    assert message == "Task 1: Choose candidate (C) done, line is allocated"
    with Session(engine) as session:
        assert session.get(StatementLine, line_id).status == "allocated"


def test_decide_claimed_task_rejected_audited(engine, task):
    _, task_id = task
    with session_scope(engine) as session:
        review.claim(session, task_id, actor="clerk-wang", minutes=15)

    message = views.decide(
        engine,
        views.Clerk("clerk-li", "clerk"),
        task_id,
        ReviewDecision("accept"),
        version=None,
        language="en",
    )

    assert message.startswith("Failed: review task 1 is claimed by clerk-wang")
    with Session(engine) as session:
        rejected = session.exec(
            select(AuditEvent).where(AuditEvent.action == "accept_rejected")
        ).one()
    assert rejected.actor == "clerk-li"


def test_undo_reopens_line(engine, task):
    line_id, task_id = task
    clerk = views.Clerk("clerk-li", "clerk")
    views.decide(
        engine, clerk, task_id, ReviewDecision("accept"), version=None, language="en"
    )

    message, new_task = views.undo(engine, clerk, line_id, "", "en")

    assert message == f"Line B-2 undone; new task {new_task}"
    with Session(engine) as session:
        assert session.get(ReviewTask, new_task).status == "open"


def test_audit_table_admin_only(engine, task):
    _, task_id = task
    with session_scope(engine) as session:
        review.claim(session, task_id, actor="clerk-li", minutes=15)

    hidden, note = views.audit_table(engine, views.Clerk("clerk-li", "clerk"), "en")
    shown, _ = views.audit_table(engine, views.Clerk("admin-wu", "admin"), "en")

    assert hidden.empty
    assert note == "Only admins may see the audit log"
    assert list(shown.iloc[:, 2]) == ["claim"]


def test_page_head_maps_every_shortcut():
    script = page_head()

    for key, element in SHORTCUTS.items():
        assert f'"{key}":"{element}"' in script
    assert "textarea" in script


def test_review_page_is_mounted(database_url, engine, tmp_path):
    from service.app import create_app
    from service.settings import Settings

    settings = Settings(database_url=database_url, data_dir=tmp_path)
    with TestClient(create_app(settings, engine=engine)) as client:
        response = client.get("/review/")

    assert response.status_code == 200
    assert "cashmatchKeys" in response.text
