"""The dashboard tab: its tables in both languages, plots and audit verdicts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import AuditEvent, Label, ReviewTask, StatementLine
from review_ui.dashboard import DashboardTab, dashboard_view, record_audit
from review_ui.texts import text
from review_ui.views import Clerk
from service import booking, master
from service.auditing import AUDIT_REASON
from service.booking import Part
from service.metrics import AlertLevels
from service.settings import Settings


@pytest.fixture
def dashboard_db(engine):
    """Two booked lines, one waiting, a review decision, an audit, a promotion."""
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
        auto = _line(session, "A1", "300.00", decision="auto", status="new")
        booking.confirm(
            session,
            auto,
            [Part("order", Decimal("300.00"), "C1", "SO-1")],
            actor="matcher",
            decision="auto",
            model_version="m-1",
        )
        reviewed = _line(session, "R1", "80.00", decision="review", status="allocated")
        session.add(
            Label(line_id=reviewed.id, action="accept", chosen={}, actor="clerk-li")
        )
        waiting = _line(
            session, "W1", "1234.56", decision="unmatched", status="unmatched"
        )
        session.add(ReviewTask(line_id=waiting.id, reason="no match"))
        session.add(ReviewTask(line_id=auto.id, reason=AUDIT_REASON))
        session.add(
            AuditEvent(
                at=datetime(2025, 6, 1, tzinfo=UTC),
                actor="train",
                action="promote",
                entity="model_version",
                entity_id="m-1",
                detail={"previous": None},
            )
        )
    return engine


def _line(session, ref, amount, *, decision, status):
    line = StatementLine(
        account="default",
        line_ref=ref,
        dedupe_key=f"key-{ref}",
        booking_date=date(2025, 6, 11),
        amount=Decimal(amount),
        counterparty_name="恒达机械有限公司",
        decision=decision,
        status=status,
        model_version="m-1",
    )
    session.add(line)
    session.flush()
    return line


@pytest.mark.parametrize(
    ("language", "figure", "week"),
    [
        pytest.param("zh", "自动化率", "周（起始日）", id="zh"),
        pytest.param("en", "Automation rate", "Week (Monday)", id="en"),
    ],
)
def test_dashboard_view_in_language(dashboard_db, language, figure, week):
    view = dashboard_view(dashboard_db, language)

    assert view.summary.iloc[0, 0] == figure
    assert view.summary.iloc[0, 1] == "33.3 %"
    assert view.automation_week.columns[0] == week
    assert view.alerts == text("dash_no_alerts", language)


def test_dashboard_view_tables(dashboard_db):
    view = dashboard_view(dashboard_db, "en")

    summary = dict(zip(view.summary.iloc[:, 0], view.summary.iloc[:, 1], strict=True))
    assert summary["Suggestions accepted as they were"] == "100.0 %"
    assert summary["Open review tasks"] == "2"
    assert summary["Unmatched money"] == "default 1,234.56 CNY"
    assert view.automation_week.iloc[0].tolist() == ["2025-06-09", 1 / 3, 3]
    assert view.unmatched_week.iloc[0].tolist() == ["2025-06-09", "CNY", 1235]
    assert view.models_week.iloc[0].tolist() == ["2025-06-09", "m-1", 3]
    assert view.by_account.iloc[0].tolist()[:4] == ["default", "33.3 %", "100.0 %", "2"]
    assert view.promotions.iloc[0, 1] == "m-1"
    assert len(view.open_audits) == 1


def test_dashboard_view_shows_alert(dashboard_db):
    levels = AlertLevels(min_automation=0.9, min_lines=1)

    view = dashboard_view(dashboard_db, "en", levels=levels)

    assert view.alerts.startswith(
        "Automation rate 33.3 % is below the alert level 90.0 %"
    )


def test_dashboard_audit_verdict(dashboard_db):
    with Session(dashboard_db) as session:
        query = select(ReviewTask.id).where(ReviewTask.reason == AUDIT_REASON)
        task_id = session.exec(query).one()
    clerk = Clerk("clerk-li", "clerk")

    message = record_audit(
        dashboard_db, clerk, task_id, right=True, note="", language="en"
    )
    again = record_audit(
        dashboard_db, clerk, task_id, right=True, note="", language="en"
    )
    view = dashboard_view(dashboard_db, "en")

    assert message == f"Audit task {task_id}: recorded as right, line is allocated"
    assert again.startswith("Failed:")
    assert len(view.open_audits) == 0
    assert "1 audited" in view.summary.iloc[1, 2]


def test_dashboard_audit_verdict_in_chinese(dashboard_db):
    with Session(dashboard_db) as session:
        query = select(ReviewTask.id).where(ReviewTask.reason == AUDIT_REASON)
        task_id = session.exec(query).one()
    clerk = Clerk("clerk-li", "clerk")

    message = record_audit(
        dashboard_db, clerk, task_id, right=True, note="", language="zh"
    )

    assert message == f"抽检任务 {task_id}：已记录为正确，流水状态 已分配（allocated）"


@pytest.mark.parametrize(
    ("language", "channel"),
    [
        pytest.param("zh", "银行转账", id="zh"),
        pytest.param("en", "transfer", id="en"),
    ],
)
def test_dashboard_channels_in_language(dashboard_db, language, channel):
    view = dashboard_view(dashboard_db, language)

    assert list(view.by_channel.iloc[:, 0]) == [channel]


def test_dashboard_tab_needs_sign_in(dashboard_db):
    tab = DashboardTab(dashboard_db, labels=None)

    handler = tab._verdict(True)

    assert handler(None, 1, "", "zh") == text("not_signed_in", "zh")
    assert handler(Clerk("clerk-li", "clerk"), None, "", "en") == text("no_task", "en")


def test_review_page_has_dashboard_tab(dashboard_db, tmp_path):
    from review_ui.app import build_review_page

    blocks = build_review_page(Settings(data_dir=tmp_path), dashboard_db)
    config = blocks.get_config_file()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    tabs = {c.get("props", {}).get("id") for c in config["components"]}

    assert {"dashboard-btn", "dashboard-summary", "audit-right-btn"} <= ids
    assert "dashboard" in tabs


def test_dashboard_refresh_fills_every_output(dashboard_db, tmp_path):
    from review_ui.app import build_review_page

    build_review_page(Settings(data_dir=tmp_path), dashboard_db)
    tab = DashboardTab(dashboard_db, labels=None)

    values = tab.refresh(Clerk("clerk-li", "clerk"), "zh")

    assert len(values) == 11
    assert values[0] == text("dash_no_alerts", "zh")


def test_dashboard_refresh_needs_sign_in(dashboard_db):
    tab = DashboardTab(dashboard_db, labels=None)

    values = tab.refresh(None, "en")

    assert values[0] == text("not_signed_in", "en")
    assert values[1:] == [None] * 10
