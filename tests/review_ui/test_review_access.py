"""Sign-in and masking on the review page, for its handlers and its HTTP API."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import gradio as gr
import httpx
import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord
from models.db import session_scope
from models.tables import ReviewTask, StatementLine
from review_ui import views
from review_ui.app import _Page
from review_ui.texts import text
from review_ui.views import Clerk
from service import booking, master
from service.app import create_app
from service.booking import Part
from service.settings import Settings
from training.cold_start import cold_start_model, default_cache_dir

PERSON = "李小龙"
MASKED_PERSON = "李**"
ACCOUNT = "6222020012348888"
MASKED_ACCOUNT = "6222****8888"
MEMO = f"货款 {PERSON} 卡号 {ACCOUNT}"
MASKED_MEMO = f"货款 {MASKED_PERSON} 卡号 {MASKED_ACCOUNT}"
AS_OF = "2025-09-30"
# Account, customer, amounts, dates, anomaly filter and sort of the queue.
FILTERS = ("", "", "", "", "", "", "all", "priority")
CLERK = Clerk("clerk-li", "clerk")
ANALYST = Clerk("analyst-zhao", "analyst")


@pytest.fixture
def payer_db(engine):
    """Customer C9, a person, with 1000.00 on its balance and a line in review.

    - P1: 1000.00 on 2025-06-10 from 李小龙, booked to C9's balance.
    - P2: 500.00 on 2025-06-11 from 李小龙, waiting as a review task.
    """
    with session_scope(engine) as session:
        master.upsert_customers(
            session, [CustomerRecord("C9", PERSON, bank_accounts=(ACCOUNT,))]
        )
        paid = _payer_line(session, "P1", "1000.00", date(2025, 6, 10))
        booking.confirm(
            session, paid, [Part("balance", Decimal("1000.00"), "C9")], actor="a"
        )
        waiting = _payer_line(
            session,
            "P2",
            "500.00",
            date(2025, 6, 11),
            status="review",
            decision="review",
            suggestion={
                "reasons": [f"payer account {ACCOUNT} seen before"],
                "candidates": [
                    {
                        "kind": "balance",
                        "customer_id": "C9",
                        "orders": [],
                        "balance": "500.00",
                        "fees": [],
                        "reasons": [f"payer account {ACCOUNT} seen before"],
                        "score": -1.0,
                    }
                ],
            },
        )
        task = ReviewTask(line_id=waiting.id, priority=100.0)
        session.add(task)
        session.flush()
        task_id = task.id
    return engine, task_id


def _payer_line(session, ref, amount, day, *, status="new", **fields):
    line = StatementLine(
        account="default",
        line_ref=ref,
        dedupe_key=f"key-{ref}",
        booking_date=day,
        amount=Decimal(amount),
        counterparty_name=PERSON,
        counterparty_account=ACCOUNT,
        memo=MEMO,
        status=status,
        **fields,
    )
    session.add(line)
    session.flush()
    return line


@pytest.fixture
def review_page(payer_db, tmp_path) -> _Page:
    engine, _ = payer_db
    settings = Settings(data_dir=tmp_path, unused_balance_days=60)
    with gr.Blocks():
        page = _Page(settings, engine)
        page.build()
    return page


def _cells(*tables) -> str:
    return " ".join(table.to_csv(index=False) for table in tables)


def test_queue_refresh_needs_sign_in(review_page):
    queue, counts, message = review_page.refresh(None, *FILTERS, "en")

    assert queue.empty
    assert list(queue.columns) == views.queue_columns("en")
    assert counts == ""
    assert message == text("not_signed_in", "en")


def test_queue_refresh_masked_for_analyst(review_page):
    queue, _, message = review_page.refresh(ANALYST, *FILTERS, "en")

    assert list(queue["Counterparty"]) == [MASKED_PERSON]
    assert list(queue["Memo"]) == [MASKED_MEMO]
    assert PERSON not in _cells(queue)
    assert message == ""


def test_queue_refresh_plain_for_clerk(review_page):
    queue, _, _ = review_page.refresh(CLERK, *FILTERS, "en")

    assert list(queue["Counterparty"]) == [PERSON]
    assert list(queue["Memo"]) == [MEMO]


def test_change_language_needs_sign_in(review_page):
    outputs = review_page.change_language(None, *FILTERS[:-1], "priority", "zh")
    queue, counts, signed_in, message = outputs[-4:]

    assert queue.empty
    assert counts == ""
    assert signed_in == text("not_signed_in", "zh")
    assert message == text("not_signed_in", "zh")


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(
            lambda page, task_id: page.open_task(None, task_id, "en"), id="open"
        ),
        pytest.param(lambda page, _: page.next_task(None, *FILTERS, "en"), id="next"),
    ],
)
def test_task_handlers_need_sign_in(review_page, payer_db, handler):
    engine, task_id = payer_db

    outputs = handler(review_page, task_id)

    assert outputs[-1] == text("not_signed_in", "en")
    assert PERSON not in repr(outputs)
    with Session(engine) as session:
        claimed = session.exec(
            select(ReviewTask).where(ReviewTask.claimed_by.is_not(None))
        ).all()
    assert claimed == []


def test_task_view_masked_for_analyst(payer_db):
    engine, task_id = payer_db

    view = views.task_view(engine, task_id, "en", masked=True)

    fields = dict(zip(view.line.iloc[:, 0], view.line.iloc[:, 1], strict=True))
    assert fields["Counterparty"] == MASKED_PERSON
    assert fields["Counterparty account"] == MASKED_ACCOUNT
    assert fields["Memo"] == MASKED_MEMO
    assert fields["Reasons"] == f"payer account {MASKED_ACCOUNT} seen before"
    assert list(view.candidates["Reasons"]) == [
        f"payer account {MASKED_ACCOUNT} seen before"
    ]
    assert view.balance == f"C9 {MASKED_PERSON}: 1000.00"
    assert list(view.earlier["Memo"]) == [MASKED_MEMO]
    assert ACCOUNT not in _cells(view.line, view.candidates, view.earlier)


def test_reports_refresh_needs_sign_in(review_page):
    outputs = review_page.reports.refresh(None, AS_OF, "", "", "en")

    assert outputs[:2] == [None, None]
    assert all(table.empty for table in outputs[2:6])
    assert outputs[-1] == text("not_signed_in", "en")


def test_reports_refresh_masked_for_analyst(review_page):
    outputs = review_page.reports.refresh(ANALYST, AS_OF, "", "", "en")
    balances, reminders, unmatched = outputs[2], outputs[3], outputs[4]

    assert list(balances["name"]) == [MASKED_PERSON]
    assert list(reminders["name"]) == [MASKED_PERSON]
    assert list(unmatched["Counterparty"]) == [MASKED_PERSON]
    assert list(unmatched["Memo"]) == [MASKED_MEMO]
    assert PERSON not in _cells(balances, reminders, unmatched)


def test_reports_refresh_plain_for_clerk(review_page):
    outputs = review_page.reports.refresh(CLERK, AS_OF, "", "", "en")

    assert list(outputs[2]["name"]) == [PERSON]
    assert list(outputs[4]["Counterparty"]) == [PERSON]


def test_report_export_needs_sign_in(review_page):
    path, message = review_page.reports.export(
        None, "unmatched", "csv", AS_OF, "", "", "en"
    )

    assert path is None
    assert message == text("not_signed_in", "en")


def test_report_export_masked_for_analyst(review_page):
    path, message = review_page.reports.export(
        ANALYST, "unmatched", "csv", AS_OF, "", "", "en"
    )
    content = Path(path).read_text(encoding="utf-8")

    assert message == ""
    assert MASKED_MEMO in content
    assert MASKED_ACCOUNT in content
    assert PERSON not in content
    assert ACCOUNT not in content


def test_show_customer_needs_sign_in(review_page):
    summary, entries, anomalies, message = review_page.reports.show_customer(
        None, "C9", AS_OF, "en"
    )

    assert summary == ""
    assert entries.empty
    assert anomalies.empty
    assert message == text("not_signed_in", "en")


def test_show_customer_masked_for_analyst(review_page):
    summary, entries, _, message = review_page.reports.show_customer(
        ANALYST, "C9", AS_OF, "en"
    )

    assert summary == f"C9 {MASKED_PERSON}: balance 1000.00"
    assert len(entries) == 1
    assert message == ""


def test_show_requests_needs_sign_in(review_page):
    requests = review_page.reports.show_requests(None, "en")

    assert requests.empty


@pytest.fixture
def served_page(payer_db, tmp_path, serve):
    engine, _ = payer_db
    cold_start_model(default_cache_dir())
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        cold_start_dir=default_cache_dir(),
    )
    app = create_app(settings, engine=engine)
    with serve(app) as base:
        yield f"{base}/review/gradio_api"


def _defaults(endpoint: dict) -> list:
    return [
        parameter.get("parameter_default")
        if parameter.get("parameter_has_default")
        else None
        for parameter in endpoint["parameters"]
    ]


def _call(base: str, api_name: str, data: list) -> str:
    """Call an API endpoint; return its events with the JSON read as text."""
    started = httpx.post(f"{base}/call/{api_name}", json={"data": data}, timeout=30)
    assert started.status_code == 200, started.text
    event_id = started.json()["event_id"]
    stream = httpx.get(f"{base}/call/{api_name}/{event_id}", timeout=60).text
    # The stream escapes non-ASCII text, so 李小龙 would never match as is.
    lines = []
    for line in stream.splitlines():
        if line.startswith("data: "):
            value = json.loads(line.removeprefix("data: "))
            line = "data: " + json.dumps(value, ensure_ascii=False)
        lines.append(line)
    return "\n".join(lines)


def test_gradio_api_needs_sign_in(served_page):
    endpoints = httpx.get(f"{served_page}/info", timeout=30).json()["named_endpoints"]

    bodies = {
        name: _call(served_page, name.strip("/"), _defaults(endpoint))
        for name, endpoint in endpoints.items()
    }

    # Every queue refresh takes the eight filters; the clerk and language are
    # server-side state that an API caller cannot send.
    queue_refreshes = [
        name
        for name, endpoint in endpoints.items()
        if name.startswith("/refresh") and len(endpoint["parameters"]) == len(FILTERS)
    ]
    assert queue_refreshes
    for name in queue_refreshes:
        assert "event: complete" in bodies[name], name
        assert text("not_signed_in", "zh") in bodies[name], name
    for name, body in bodies.items():
        assert PERSON not in body, name
        assert ACCOUNT not in body, name
