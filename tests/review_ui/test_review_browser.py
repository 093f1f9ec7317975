"""The review page in a real browser: sign in, accept, split, undo.

Runs Debian's chromium through Playwright against uvicorn on 127.0.0.1.
Set CASHMATCH_SCREENSHOT_DIR to also write the screenshots of the queue
and a task in both languages.
"""

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.db import make_engine, session_scope
from models.tables import Allocation, Label, ReviewTask, SalesOrder, StatementLine
from service.app import create_app
from service.auth import create_api_key, upsert_user
from service.booking import balance_of
from service.settings import Settings
from training.cold_start import cold_start_model, default_cache_dir

PASSWORD = "clerk-password-1"

pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path, serve):
    """Serve a seeded app with uvicorn on a free port of 127.0.0.1."""
    cold_start_model(default_cache_dir())
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'cashmatch.db'}",
        data_dir=tmp_path,
        cold_start_dir=default_cache_dir(),
    )
    engine = make_engine(settings.database_url)
    app = create_app(settings, engine=engine)
    _seed(app, engine)

    with serve(app) as base:
        yield f"{base}/review/", engine
    engine.dispose()


def _seed(app, engine) -> None:
    with session_scope(engine) as session:
        key = create_api_key(session, "erp", role="erp", actor="test")
        upsert_user(session, "clerk-li", role="clerk", password=PASSWORD)
        upsert_user(session, "admin-wu", role="admin", password=PASSWORD)
    headers = {"X-API-Key": key}
    customers = [
        {"customer_id": "C1", "name": "恒达机械有限公司", "bank_accounts": ["6222001"]},
        {"customer_id": "C2", "name": "杭州明远贸易有限公司", "aliases": ["明远贸易"]},
    ]
    orders = [
        {
            "order_id": order_id,
            "customer_id": customer,
            "order_date": day,
            "amount": amount,
            "open_amount": amount,
        }
        for order_id, customer, day, amount in (
            ("SO-1002", "C1", "2025-06-02", "200.00"),
            ("SO-1003", "C1", "2025-06-03", "150.00"),
            ("SO-2001", "C2", "2025-06-01", "800.00"),
        )
    ]
    lines = [
        {
            "line_ref": ref,
            "booking_date": day,
            "amount": amount,
            "memo": memo,
            "counterparty_name": name,
            "counterparty_account": account,
        }
        for ref, day, amount, name, account, memo in (
            ("B-2", "2025-06-11", "500.00", "恒达机械有限公司", "6222001", "6月货款"),
            ("B-3", "2025-06-11", "350.00", "李四", "62170001", "转账"),
            (
                "B-5",
                "2025-06-12",
                "64.00",
                "=cmd|' /C calc'!A0",
                "",
                '=HYPERLINK("http://x.invalid/","open")',
            ),
        )
    ]
    with TestClient(app) as client:
        assert (
            client.put(
                "/v1/customers", headers=headers, json={"customers": customers}
            ).status_code
            == 200
        )
        assert (
            client.put(
                "/v1/orders", headers=headers, json={"orders": orders}
            ).status_code
            == 200
        )
        assert (
            client.post("/v1/match", headers=headers, json={"lines": lines}).status_code
            == 200
        )


def _task_id(engine, line_ref: str) -> int:
    with Session(engine) as session:
        query = (
            select(ReviewTask.id)
            .join(StatementLine, StatementLine.id == ReviewTask.line_id)
            .where(StatementLine.line_ref == line_ref, ReviewTask.status == "open")
        )
        return session.exec(query).one()


def _expect(playwright_api):
    # A loaded CI machine answers a Gradio event in seconds, not milliseconds.
    playwright_api.expect.set_options(timeout=30_000)
    return playwright_api.expect


def _field(page, element_id: str):
    """Return the text input of a Gradio field, an input or a textarea."""
    return page.locator(f"#{element_id}").locator("input, textarea").first


def _sign_in(page, expect, name: str) -> None:
    _field(page, "user-name").fill(name)
    _field(page, "password").fill(PASSWORD)
    page.locator("#sign-in-btn").click()
    expect(_field(page, "who")).to_have_value(re.compile(name))


def _open(page, expect, task_id: int) -> None:
    page.get_by_role("tab", name=re.compile("队列|Queue")).click()
    _field(page, "task-number").fill(str(task_id))
    page.locator("#open-btn").click()
    expect(_field(page, "message")).to_have_value(
        re.compile(f"(领取任务|Claimed task) {task_id}")
    )


def test_review_page_accept_split_undo(served, page, playwright_api):
    url, engine = served
    expect = _expect(playwright_api)
    page.goto(url)
    _sign_in(page, expect, "clerk-li")
    expect(page.locator("#queue")).to_contain_text("B-3")

    accepted = _task_id(engine, "B-2")
    _open(page, expect, accepted)
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("a")
    expect(_field(page, "message")).to_have_value(re.compile("接受建议.*allocated"))
    page.locator("#undo-btn").click()
    expect(_field(page, "message")).to_have_value(re.compile("B-2.*撤销"))

    split = _task_id(engine, "B-3")
    _open(page, expect, split)
    _field(page, "split-customer").fill("C1")
    _field(page, "split-rows").fill("SO-1002 200.00\nSO-1003 150.00")
    page.locator("#split-btn").click()
    expect(_field(page, "message")).to_have_value(re.compile("拆分.*allocated"))

    with Session(engine) as session:
        lines = {
            line.line_ref: line for line in session.exec(select(StatementLine)).all()
        }
        b2_allocations = session.exec(
            select(Allocation).where(Allocation.line_id == lines["B-2"].id)
        ).all()
        b3_confirmed = session.exec(
            select(Allocation).where(
                Allocation.line_id == lines["B-3"].id, Allocation.status == "confirmed"
            )
        ).all()
        labels = session.exec(select(Label).order_by(Label.id)).all()
        orders = {o.order_id: o for o in session.exec(select(SalesOrder)).all()}
        c1_balance = balance_of(session, "C1")
    assert lines["B-2"].status == "review"
    assert {a.status for a in b2_allocations} <= {"reversed", "rejected"}
    assert "reversed" in {a.status for a in b2_allocations}
    assert lines["B-3"].status == "allocated"
    assert sorted((a.order_id, a.amount) for a in b3_confirmed) == [
        ("SO-1002", Decimal("200.00")),
        ("SO-1003", Decimal("150.00")),
    ]
    assert orders["SO-1002"].open_amount == Decimal("0.00")
    assert orders["SO-1003"].open_amount == Decimal("0.00")
    assert c1_balance == Decimal("0.00")
    assert [(label.action, label.actor) for label in labels] == [
        ("accept", "clerk-li"),
        ("undo", "clerk-li"),
        ("split", "clerk-li"),
    ]


def test_review_page_needs_sign_in(served, page, playwright_api):
    url, engine = served
    expect = _expect(playwright_api)
    page.goto(url)
    expect(_field(page, "message")).to_have_value(re.compile("未登录"))
    expect(page.locator("#queue")).not_to_contain_text("B-2")

    page.locator("#next-btn").click()

    expect(_field(page, "message")).to_have_value(re.compile("未登录"))
    expect(page.locator("#queue")).not_to_contain_text("李四")
    with Session(engine) as session:
        claimed = session.exec(
            select(ReviewTask).where(ReviewTask.claimed_by.is_not(None))
        ).all()
    assert claimed == []


def test_review_page_shows_formula_memo_as_text(served, page, playwright_api):
    url, _ = served
    expect = _expect(playwright_api)
    page.goto(url)
    _sign_in(page, expect, "clerk-li")

    queue = page.locator("#queue")

    expect(queue).to_contain_text('=HYPERLINK("http://x.invalid/","open")')
    expect(queue).to_contain_text("=cmd|' /C calc'!A0")
    assert queue.locator("a[href*='x.invalid']").count() == 0


def test_review_page_screenshots(served, page, playwright_api):
    folder = os.environ.get("CASHMATCH_SCREENSHOT_DIR")
    if not folder:
        pytest.skip("set CASHMATCH_SCREENSHOT_DIR to write the screenshots")
    url, engine = served
    expect = _expect(playwright_api)
    page.goto(url)
    _sign_in(page, expect, "admin-wu")
    expect(page.locator("#queue")).to_contain_text("B-3")
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)

    for language, label in (("zh", "中文"), ("en", "English")):
        page.get_by_label(label).check()
        expect(page.locator("#sign-in-btn")).to_have_text(
            "登录" if language == "zh" else "Sign in"
        )
        page.get_by_role("tab", name=re.compile("队列|Queue")).click()
        expect(page.locator("#queue")).to_contain_text("B-3")
        page.screenshot(
            path=str(target / f"review-queue-{language}.png"), full_page=True
        )
        _open(page, expect, _task_id(engine, "B-2"))
        page.screenshot(
            path=str(target / f"review-task-{language}.png"), full_page=True
        )
        page.locator("#release-btn").click()
