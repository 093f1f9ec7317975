"""The reports tab of the review page: its views and actions, without a browser."""

from datetime import date
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlmodel import Session

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import StatementLine
from review_ui import reports as tab
from review_ui.views import Clerk
from service import booking, ledger, master
from service.app import create_app
from service.booking import Part
from service.settings import Settings

AS_OF = date(2025, 9, 30)
CLERK_A = Clerk("clerk-li", "clerk")
CLERK_B = Clerk("clerk-wang", "clerk")


@pytest.fixture
def settings(database_url, tmp_path, cold_start_dir, monkeypatch) -> Settings:
    monkeypatch.setenv("CASHMATCH_APPROVAL_LIMIT", "1000.00")
    return Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )


@pytest.fixture
def seeded(engine) -> None:
    """C1 with order SO-1 (300.00) and 2000.00 on its balance since 2025-06-10."""
    with session_scope(engine) as session:
        master.upsert_customers(session, [CustomerRecord("C1", "=恒达机械有限公司")])
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    "SO-1", "C1", date(2025, 6, 1), Decimal("300.00"), Decimal("300.00")
                )
            ],
        )
        line = StatementLine(
            account="default",
            line_ref="L1",
            dedupe_key="k-L1",
            booking_date=date(2025, 6, 10),
            amount=Decimal("2000.00"),
            memo="@SUM(1+1)",
        )
        session.add(line)
        session.flush()
        booking.confirm(
            session, line, [Part("balance", Decimal("2000.00"), "C1")], actor="a"
        )


def _balance(engine) -> Decimal:
    with Session(engine) as session:
        return ledger.balance(session, "C1")


def test_reports_tab_view_shows_ageing_and_reminders(engine, settings, seeded):
    view = tab.reports_view(
        engine, settings, as_of=AS_OF, account="default", month="2025-06", language="en"
    )

    ageing = dict(zip(view.ageing["bucket"], view.ageing["amount"], strict=True))
    assert ageing["days_over_90"] == 2000.0
    assert view.balances.iloc[0]["balance"] == "2000.00"
    assert list(view.reminders["Kind"]) == ["unused_balance"]
    assert "Balances 2000.00" in view.summary
    assert "default 2025-06 does not tie; differences: 1" in view.summary
    assert "Customer" in view.balances.columns


def test_reports_tab_apply_then_customer_view(engine, settings, seeded):
    message = tab.apply_balance(
        engine,
        settings,
        CLERK_A,
        customer_id="C1",
        order_id="SO-1",
        invoice_id="",
        amount="300.00",
        language="en",
    )
    view = tab.customer_view(engine, settings, "C1", as_of=AS_OF, language="zh")

    assert message == "Applied 300.00 of C1's balance; balance is 1700.00"
    assert view.summary == "C1 =恒达机械有限公司：余额 1700.00"
    assert list(view.entries["类型"]) == ["收款入余额", "余额支付"]
    assert "余额长期未用" in list(view.anomalies["类型"])


@pytest.mark.parametrize(
    ("clerk", "amount", "expected"),
    [
        pytest.param(None, "10.00", "Not signed in", id="signed-out"),
        pytest.param(Clerk("ana", "analyst"), "10.00", "may not do this", id="role"),
        pytest.param(CLERK_A, "ten", "not an amount like 1250.00", id="amount"),
        pytest.param(CLERK_A, "2500.00", "balance is 2000.00", id="balance"),
    ],
)
def test_reports_tab_apply_refused(engine, settings, seeded, clerk, amount, expected):
    message = tab.apply_balance(
        engine,
        settings,
        clerk,
        customer_id="C1",
        order_id="SO-1",
        invoice_id="",
        amount=amount,
        language="en",
    )

    assert expected in message
    assert _balance(engine) == Decimal("2000.00")


def test_reports_tab_refund_needs_second_clerk(engine, settings, seeded):
    asked = tab.ask(
        engine,
        settings,
        CLERK_A,
        kind="refund",
        customer_id="C1",
        amount="1500.00",
        note="customer asked",
        language="en",
    )
    pending = tab.pending_requests(engine, "en")
    request_id = int(pending.iloc[0]["id"])

    own = tab.decide_request(
        engine, settings, CLERK_A, request_id, approve=True, language="en"
    )
    other = tab.decide_request(
        engine, settings, CLERK_B, request_id, approve=True, language="en"
    )

    assert asked == f"Request {request_id} (refund 1500.00): pending"
    assert "another user must approve it" in own
    assert other == f"Request {request_id} (refund 1500.00): approved"
    assert _balance(engine) == Decimal("500.00")
    assert tab.pending_requests(engine, "en").empty


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_reports_tab_export_is_formula_safe(engine, settings, seeded, tmp_path, fmt):
    path = tab.export_report(
        engine,
        settings,
        "balances",
        fmt,
        as_of=AS_OF,
        account="",
        month="",
        folder=tmp_path,
    )

    if fmt == "csv":
        content = path.read_text(encoding="utf-8-sig")
        assert "'=恒达机械有限公司" in content
        assert ",2000.00," in content
        return
    sheet = load_workbook(path).active
    name_cell, balance_cell = sheet["B2"], sheet["C2"]
    assert name_cell.value == "=恒达机械有限公司"
    assert name_cell.data_type == "s"
    assert balance_cell.value == 2000


def test_reports_tab_bad_day_is_message():
    with pytest.raises(ValueError, match="not a date like 2025-06-30"):
        tab.parse_day("30/06/2025", "en")


def test_reports_tab_page_serves(engine, settings):
    app = create_app(settings, engine=engine, review_page=True)

    with TestClient(app) as client:
        response = client.get("/review/config")

    assert response.status_code == 200
    assert "报表与预付款" in response.text
    for element in ("ageing-plot", "anomaly-plot", "ledger-apply-btn", "reminders"):
        assert element in response.text
