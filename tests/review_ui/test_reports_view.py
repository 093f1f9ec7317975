"""The reports tab's codes in Chinese and English, on a real database."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from ingest.records import CustomerRecord
from models.db import session_scope
from models.tables import LedgerRequest, StatementLine
from review_ui import reports as tab
from review_ui.texts import text
from review_ui.views import Clerk
from service import booking, master
from service.booking import Part
from service.settings import Settings

AS_OF = date(2025, 9, 30)
CLERK_A = Clerk("clerk-li", "clerk")
CLERK_B = Clerk("clerk-wang", "clerk")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        approval_limit=Decimal("1000.00"),
        unused_balance_days=60,
    )


@pytest.fixture
def ledger_db(engine):
    """C1 with a repeat payment on its balance, one marked for refund and more.

    - L1: 2000.00 on 2025-06-10, flagged `duplicate`, booked to the balance.
    - L2: 150.00 marked for refund, with a pending refund request.
    - L3: 60.00 with a status and an anomaly code the page has no name for.
    - U1: 88.00 that nothing has matched.
    """
    with session_scope(engine) as session:
        master.upsert_customers(session, [CustomerRecord("C1", "恒达机械有限公司")])
        repeat = _line(
            session, "L1", "2000.00", date(2025, 6, 10), anomaly_reasons=["duplicate"]
        )
        booking.confirm(
            session, repeat, [Part("balance", Decimal("2000.00"), "C1")], actor="a"
        )
        marked = _line(
            session,
            "L2",
            "150.00",
            date(2025, 9, 1),
            status="refund",
            customer_id="C1",
        )
        session.add(
            LedgerRequest(
                customer_id="C1",
                kind="refund",
                amount=Decimal("150.00"),
                status="pending",
                source_line_id=marked.id,
                requested_by="clerk-li",
            )
        )
        _line(
            session,
            "L3",
            "60.00",
            date(2025, 9, 2),
            status="on_hold",
            customer_id="C1",
            anomaly_reasons=["something_new"],
        )
        _line(session, "U1", "88.00", date(2025, 9, 3), status="unmatched")
    return engine


def _line(session, ref, amount, day, *, status="new", **fields):
    line = StatementLine(
        account="default",
        line_ref=ref,
        dedupe_key=f"key-{ref}",
        booking_date=day,
        amount=Decimal(amount),
        counterparty_name="恒达机械有限公司",
        status=status,
        **fields,
    )
    session.add(line)
    session.flush()
    return line


def _request_id(message: str) -> int:
    return int(re.search(r"\d+", message).group())


def _reports(engine, settings, language):
    return tab.reports_view(
        engine, settings, as_of=AS_OF, account="", month="", language=language
    )


def test_reports_view_codes_in_chinese(ledger_db, settings):
    view = _reports(ledger_db, settings, "zh")

    assert list(view.anomalies["kind"]) == [
        "流水：疑似重复付款",
        "流水：something_new",
        "客户：重复付款待退款",
        "客户：余额长期未用",
    ]
    assert list(view.reminders["类型"]) == [
        "余额长期未用",
        "重复付款待退款",
        "重复付款待退款",
    ]
    assert list(view.reminders["详情"])[1:] == [
        "在预付款余额中",
        "已标记待退款，申请待审批",
    ]
    assert list(view.unmatched["状态"]) == ["未匹配"]


def test_reports_view_codes_in_english(ledger_db, settings):
    view = _reports(ledger_db, settings, "en")

    assert list(view.anomalies["kind"]) == [
        "line: duplicate",
        "line: something_new",
        "customer: duplicate",
        "customer: unused_balance",
    ]
    assert list(view.reminders["Kind"]) == [
        "unused_balance",
        "duplicate",
        "duplicate",
    ]
    assert list(view.reminders["detail"])[1:] == [
        "on balance",
        "marked for refund, request pending",
    ]
    assert list(view.unmatched["Status"]) == ["unmatched"]


def test_customer_view_codes_in_chinese(ledger_db, settings):
    view = tab.customer_view(ledger_db, settings, "C1", as_of=AS_OF, language="zh")

    assert list(view.entries["类型"]) == ["收款入余额"]
    assert list(view.anomalies["层级"]) == ["客户", "客户", "流水", "流水"]
    assert list(view.anomalies["类型"]) == [
        "重复付款待退款",
        "余额长期未用",
        "something_new",
        "疑似重复付款",
    ]
    assert list(view.anomalies["详情"])[2:] == [
        "L3 2025-09-02 on_hold",
        "L1 2025-06-10 已分配",
    ]


def test_customer_view_codes_in_english(ledger_db, settings):
    view = tab.customer_view(ledger_db, settings, "C1", as_of=AS_OF, language="en")

    assert list(view.entries["Kind"]) == ["receipt"]
    assert list(view.anomalies["level"]) == ["customer", "customer", "line", "line"]
    assert list(view.anomalies["Kind"]) == [
        "duplicate",
        "unused_balance",
        "something_new",
        "duplicate",
    ]
    assert list(view.anomalies["detail"])[2:] == [
        "L3 2025-09-02 on_hold",
        "L1 2025-06-10 allocated",
    ]


@pytest.mark.parametrize(
    ("language", "kind", "status"),
    [
        pytest.param("zh", "退款", "待审批", id="zh"),
        pytest.param("en", "refund", "pending", id="en"),
    ],
)
def test_pending_requests_in_language(ledger_db, language, kind, status):
    table = tab.pending_requests(ledger_db, language)

    assert list(table[text("col_kind", language)]) == [kind]
    assert list(table[text("col_status", language)]) == [status]


def test_request_messages_in_chinese(ledger_db, settings):
    requested = tab.ask(
        ledger_db,
        settings,
        CLERK_A,
        kind="write_off",
        customer_id="C1",
        amount="1500.00",
        note="",
        language="zh",
    )
    request_id = _request_id(requested)
    rejected = tab.decide_request(
        ledger_db, settings, CLERK_B, request_id, approve=False, language="zh"
    )
    refunded = tab.ask(
        ledger_db,
        settings,
        CLERK_A,
        kind="refund",
        customer_id="C1",
        amount="100.00",
        note="",
        language="zh",
    )

    assert requested == f"申请 {request_id}（核销 1500.00）：待审批（pending）"
    assert rejected == f"申请 {request_id}（核销 1500.00）：已驳回（rejected）"
    refund_id = _request_id(refunded)
    assert refunded == f"申请 {refund_id}（退款 100.00）：已批准（approved）"


def test_request_message_in_english(ledger_db, settings):
    requested = tab.ask(
        ledger_db,
        settings,
        CLERK_A,
        kind="write_off",
        customer_id="C1",
        amount="1500.00",
        note="",
        language="en",
    )

    request_id = _request_id(requested)
    assert requested == f"Request {request_id} (write_off 1500.00): pending"


def test_reports_view_headers_and_buckets_in_chinese(ledger_db, settings):
    chinese = _reports(ledger_db, settings, "zh")
    english = _reports(ledger_db, settings, "en")

    assert list(chinese.balances.columns) == [
        "客户",
        "客户名称",
        "余额",
        "0–30 天",
        "31–60 天",
        "61–90 天",
        "90 天以上",
        "最早入账日",
        "账龄（天）",
    ]
    assert list(chinese.ageing["bucket"]) == [
        "0–30 天",
        "31–60 天",
        "61–90 天",
        "90 天以上",
    ]
    assert set(chinese.unmatched["已识别付款人"]) <= {"是", "否"}
    assert len(chinese.unmatched) > 0
    assert list(english.balances.columns)[1:4] == ["name", "balance", "days_0_30"]
    assert list(english.ageing["bucket"])[0] == "days_0_30"
