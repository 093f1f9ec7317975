"""Dashboard figures, their Prometheus text and the alerts."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from models.db import session_scope
from models.tables import AuditEvent, Label, ReviewTask, StatementLine
from service import metrics
from service.app import create_app
from service.auditing import AUDIT_REASON
from service.metrics import AlertLevels, dashboard_figures, metrics_text
from service.settings import Settings
from training.metrics import wilson_interval

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)
WEEK1 = date(2025, 6, 3)
WEEK2 = date(2025, 6, 10)


def _line(
    session,
    ref,
    amount,
    *,
    day,
    decision,
    status,
    account="default",
    channel="transfer",
    version="m-a",
    currency="CNY",
):
    line = StatementLine(
        account=account,
        line_ref=ref,
        dedupe_key=f"key-{ref}",
        booking_date=day,
        amount=Decimal(amount),
        currency=currency,
        channel=channel,
        decision=decision,
        status=status,
        model_version=version,
    )
    session.add(line)
    session.flush()
    return line


def _label(session, line, action, candidate=None):
    session.add(
        Label(
            line_id=line.id,
            action=action,
            chosen={"candidate": candidate},
            actor="clerk",
        )
    )


def _audit(session, line, verdict=None):
    task = ReviewTask(
        line_id=line.id,
        reason=AUDIT_REASON,
        status="open" if verdict is None else "decided",
        created_at=datetime(2025, 6, 12, tzinfo=UTC),
    )
    session.add(task)
    session.flush()
    if verdict is not None:
        session.add(
            Label(
                line_id=line.id,
                review_task_id=task.id,
                action=f"audit_{verdict}",
                actor="clerk",
            )
        )


@pytest.fixture
def figures_db(engine):
    """Lines of two accounts, two channels and two weeks, with labels and audits."""
    with session_scope(engine) as session:
        autos = [
            _line(
                session,
                f"A{i}",
                "100.00",
                day=WEEK1,
                decision="auto",
                status="allocated",
            )
            for i in range(3)
        ]
        reviewed = [
            _line(
                session,
                f"R{i}",
                "70.00",
                day=WEEK1,
                decision="review",
                status="allocated",
            )
            for i in range(4)
        ]
        for i in range(2):
            _line(
                session,
                f"B{i}",
                "30.00",
                day=WEEK2,
                decision="auto",
                status="allocated",
                account="acct-2",
                channel="alipay",
                version="m-b",
            )
        waiting = _line(
            session,
            "U1",
            "100.00",
            day=WEEK2,
            decision="unmatched",
            status="unmatched",
            account="acct-2",
            channel="alipay",
            version="m-b",
        )
        _line(
            session,
            "U2",
            "50.50",
            day=WEEK2,
            decision="review",
            status="review",
            account="acct-2",
            channel="alipay",
            version="m-b",
        )
        _line(session, "V1", "999.00", day=WEEK2, decision="auto", status="voided")
        _line(
            session,
            "OUT",
            "-20.00",
            day=WEEK2,
            decision="unmatched",
            status="unmatched",
        )

        _label(session, reviewed[0], "accept")
        _label(session, reviewed[1], "choose", candidate=0)
        _label(session, reviewed[2], "choose", candidate=1)
        _label(session, reviewed[3], "split")
        _label(session, reviewed[3], "undo")

        for hours in (10, 2):
            session.add(
                ReviewTask(line_id=waiting.id, created_at=NOW - timedelta(hours=hours))
            )
        for line, verdict in zip(autos, ("right", "right", "wrong"), strict=True):
            _audit(session, line, verdict)
        _audit(session, autos[0])
        for at, version, previous in (
            (datetime(2025, 6, 1, tzinfo=UTC), "m-a", None),
            (datetime(2025, 6, 8, tzinfo=UTC), "m-b", "m-a"),
        ):
            session.add(
                AuditEvent(
                    at=at,
                    actor="train",
                    action="promote",
                    entity="model_version",
                    entity_id=version,
                    detail={"previous": previous},
                )
            )
    return engine


def _figures(engine, **levels):
    with Session(engine) as session:
        return dashboard_figures(session, levels=AlertLevels(**levels), now=NOW)


def test_dashboard_automation(figures_db):
    found = _figures(figures_db)

    assert (found.automation.hits, found.automation.total) == (5, 11)
    assert found.decided == {"auto": 5, "review": 5, "unmatched": 1}
    by_account = found.automation_by["account"]
    assert (by_account["default"].hits, by_account["default"].total) == (3, 7)
    assert (by_account["acct-2"].hits, by_account["acct-2"].total) == (2, 4)
    assert found.automation_by["channel"]["alipay"].value == 0.5
    weeks = found.automation_by["week"]
    assert list(weeks) == ["2025-06-02", "2025-06-09"]
    assert weeks["2025-06-02"].total == 7


def test_dashboard_suggestions_accepted(figures_db):
    found = _figures(figures_db)

    assert (found.accepted.hits, found.accepted.total) == (2, 4)
    assert found.accepted_by["week"]["2025-06-02"].value == 0.5


def test_dashboard_queue_and_unmatched(figures_db):
    found = _figures(figures_db)

    assert found.queue.open == 3
    assert found.queue.oldest_hours >= 10.0
    assert found.queue_by["channel"]["alipay"].open == 2
    assert found.unmatched_by["account"] == {("acct-2", "CNY"): Decimal("150.50")}
    assert found.unmatched_by["channel"] == {("alipay", "CNY"): Decimal("150.50")}
    assert found.unmatched_by["week"] == {("2025-06-09", "CNY"): Decimal("150.50")}


def test_dashboard_precision_estimate(figures_db):
    audits = _figures(figures_db).audits

    assert (audits.right, audits.wrong, audits.pending) == (2, 1, 1)
    assert audits.precision.interval == wilson_interval(2, 3)
    assert audits.by_model["m-a"].total == 3


def test_dashboard_models_over_time(figures_db):
    found = _figures(figures_db)

    assert [p.version for p in found.promotions] == ["m-a", "m-b"]
    assert found.promotions[1].previous == "m-a"
    assert found.lines_by_model_week[("2025-06-02", "m-a")] == 7
    assert found.lines_by_model_week[("2025-06-09", "m-b")] == 4


def test_metrics_text_has_every_figure(figures_db):
    with Session(figures_db) as session:
        text = metrics_text(session, levels=AlertLevels(min_automation=0.0))

    for expected in (
        "cashmatch_automation_rate 0.45454545454545453",
        'cashmatch_automation_rate_by_account{account="acct-2"} 0.5',
        'cashmatch_automation_rate_by_channel{channel="transfer"}',
        'cashmatch_automation_rate_by_week{week="2025-06-09"} 0.5',
        'cashmatch_matched_lines{decision="unmatched"} 1',
        "cashmatch_auto_precision_estimate 0.6666666666666666",
        'cashmatch_audit_verdicts{verdict="pending"} 1',
        "cashmatch_suggestions_accepted_share 0.5",
        "cashmatch_review_tasks_open 3",
        'cashmatch_review_tasks_open_by_account{account="acct-2"} 2',
        'cashmatch_unmatched_amount{account="acct-2",currency="CNY"} 150.50',
        'cashmatch_unmatched_amount_by_week{week="2025-06-09",currency="CNY"} 150.50',
        'cashmatch_lines_by_model{week="2025-06-02",version="m-a"} 7',
        'cashmatch_model_promoted_timestamp_seconds{version="m-b"}',
        'cashmatch_alert{alert="automation"} 0',
        "# TYPE cashmatch_review_queue_oldest_seconds gauge",
    ):
        assert expected in text, expected


def test_metrics_text_nan_without_lines(engine):
    with Session(engine) as session:
        text = metrics_text(session)

    assert "cashmatch_automation_rate NaN" in text
    assert "cashmatch_auto_precision_estimate NaN" in text


@pytest.fixture
def quiet_alerts():
    metrics._alert_logged.clear()
    yield
    metrics._alert_logged.clear()


def test_alerts_fire_and_log_once(figures_db, caplog, quiet_alerts):
    levels = {"min_automation": 0.9, "min_precision": 0.98, "min_lines": 3}
    caplog.set_level(logging.WARNING, logger="cashmatch.service")

    first = _figures(figures_db, **levels)
    second = _figures(figures_db, **levels)

    active = {alert.name: alert for alert in first.alerts if alert.active}
    assert set(active) == {"automation", "precision"}
    assert active["precision"].count == 3
    assert [alert.active for alert in second.alerts] == [True, True]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("alert: automation" in message for message in warnings)
    assert any("below the level 0.980" in message for message in warnings)


@pytest.mark.parametrize(
    ("levels", "active"),
    [
        pytest.param({"min_automation": 0.0, "min_precision": 0.0}, set(), id="off"),
        pytest.param({"min_automation": 0.3, "min_precision": 0.5}, set(), id="above"),
        pytest.param({"min_automation": 0.9, "min_lines": 50}, set(), id="too-few"),
        pytest.param(
            {"min_automation": 0.9, "min_precision": 0.0, "min_lines": 3},
            {"automation"},
            id="low",
        ),
    ],
)
def test_alert_levels(figures_db, quiet_alerts, levels, active):
    found = _figures(figures_db, **levels)

    assert {alert.name for alert in found.alerts if alert.active} == active


def test_metrics_route_shows_alert(
    engine, tmp_path, cold_start_dir, monkeypatch, quiet_alerts
):
    monkeypatch.setenv("CASHMATCH_ALERT_MIN_AUTOMATION", "0.99")
    monkeypatch.setenv("CASHMATCH_ALERT_MIN_LINES", "1")
    with session_scope(engine) as session:
        _line(session, "R1", "10.00", day=WEEK1, decision="review", status="review")
    settings = Settings(data_dir=tmp_path, cold_start_dir=cold_start_dir)
    app = create_app(settings, engine=engine, review_page=False)

    with TestClient(app) as client:
        response = client.get("/metrics")

    assert response.status_code == 200
    assert 'cashmatch_alert{alert="automation"} 1' in response.text
    assert 'cashmatch_alert_level{alert="automation"} 0.99' in response.text
