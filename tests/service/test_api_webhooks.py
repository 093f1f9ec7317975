"""Webhooks: registration, signed deliveries to a real receiver, retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.tables import WebhookDelivery, utcnow
from service.app import create_app
from service.settings import Settings
from service.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSettings,
    backoff_seconds,
    run_round,
)

SECRET = "whsec-test-0123456789abcdef"
CUSTOMERS = [{"customer_id": "C1", "name": "恒达机械有限公司"}]
ORDERS = [
    {
        "order_id": "SO-9501",
        "customer_id": "C1",
        "order_date": "2025-06-01",
        "amount": "730.00",
        "open_amount": "730.00",
    }
]
LINE = {
    "line_ref": "W1",
    "booking_date": "2025-06-10",
    "amount": "730.00",
    "memo": "SO-9501",
    "counterparty_name": "恒达机械有限公司",
}


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs and returns set statuses."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/events"


@pytest.fixture
def receiver():
    statuses: list[int] = []
    found = Receiver(statuses)
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir, monkeypatch):
    # Rounds run in the tests, so deliveries happen at known moments.
    monkeypatch.setenv("CASHMATCH_WEBHOOK_INTERVAL_SECONDS", "0")
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    app = create_app(settings, engine=engine, review_page=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def hook_settings():
    return WebhookSettings(
        interval_seconds=0, max_attempts=3, backoff_seconds=60, timeout_seconds=2
    )


def _seed(client, headers):
    client.put("/v1/customers", headers=headers, json={"customers": CUSTOMERS})
    client.put("/v1/orders", headers=headers, json={"orders": ORDERS})


def _register(client, keys, url) -> dict:
    response = client.post(
        "/v1/webhooks",
        headers=keys["admin"],
        json={"url": url, "secret": SECRET, "description": "ERP"},
    )
    assert response.status_code == 201
    return response.json()


def _book_line(client, keys) -> dict:
    _seed(client, keys["erp"])
    body = client.post("/v1/match", headers=keys["erp"], json={"lines": [LINE]}).json()
    line = body["lines"][0]
    assert line["decision"] == "auto"
    return line


def _deliveries(engine) -> list[WebhookDelivery]:
    with Session(engine) as session:
        return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_webhook_register_never_returns_secret(client, keys, receiver):
    created = _register(client, keys, receiver.url)

    listed = client.get("/v1/webhooks", headers=keys["admin"]).json()

    assert created["url"] == receiver.url
    assert created["active"] is True
    assert "secret" not in created
    assert [item["id"] for item in listed] == [created["id"]]
    assert SECRET not in json.dumps(listed)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"url": "ftp://erp.example/x", "secret": SECRET}, 422, id="ftp"),
        pytest.param({"url": "http://127.0.0.1/x", "secret": "short"}, 422, id="short"),
        pytest.param({"secret": SECRET}, 422, id="no-url"),
    ],
)
def test_webhook_register_invalid_is_422(client, keys, body, status):
    response = client.post("/v1/webhooks", headers=keys["admin"], json=body)

    assert response.status_code == status
    assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize("role", ["erp", "clerk", "analyst"])
def test_webhook_routes_need_admin(client, keys, role):
    assert client.get("/v1/webhooks", headers=keys[role]).status_code == 403
    assert client.get("/v1/webhooks/deliveries", headers=keys[role]).status_code == 403


def test_webhook_booking_sends_nothing_in_request(client, keys, engine, receiver):
    _register(client, keys, receiver.url)

    _book_line(client, keys)

    assert receiver.requests == []
    assert _deliveries(engine) == []


def test_webhook_delivers_signed_booking(client, keys, engine, receiver, hook_settings):
    _register(client, keys, receiver.url)
    line = _book_line(client, keys)

    report = run_round(engine, hook_settings)

    assert report.queued == 1
    assert report.delivered == 1
    headers, body = receiver.requests[0]
    event = json.loads(body)
    assert event["type"] == "allocation.booked"
    assert event["data"]["line_id"] == line["line_id"]
    assert event["data"]["order_id"] == "SO-9501"
    assert event["data"]["amount"] == "730.00"
    assert headers[EVENT_ID_HEADER] == event["id"]
    expected = hmac.new(
        SECRET.encode(),
        f"{headers[TIMESTAMP_HEADER]}.".encode() + body,
        hashlib.sha256,
    ).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"v1={expected}"
    assert [d.status for d in _deliveries(engine)] == ["delivered"]


def test_webhook_second_round_sends_nothing_again(
    client, keys, engine, receiver, hook_settings
):
    _register(client, keys, receiver.url)
    _book_line(client, keys)
    run_round(engine, hook_settings)

    report = run_round(engine, hook_settings)

    assert report.queued == 0
    assert len(receiver.requests) == 1


def test_webhook_delivers_reversal(client, keys, engine, receiver, hook_settings):
    _register(client, keys, receiver.url)
    line = _book_line(client, keys)
    response = client.post(
        f"/v1/lines/{line['line_id']}/reverse",
        headers=keys["erp"],
        json={"version": line["version"], "reason": "wrong customer"},
    )
    assert response.status_code == 200

    run_round(engine, hook_settings)

    types = [json.loads(body)["type"] for _, body in receiver.requests]
    assert types == ["allocation.booked", "allocation.reversed"]
    ids = [json.loads(body)["id"] for _, body in receiver.requests]
    assert len(set(ids)) == 2


def test_webhook_failed_attempt_is_retried(
    client, keys, engine, receiver, hook_settings
):
    receiver.statuses.extend([500])
    _register(client, keys, receiver.url)
    _book_line(client, keys)
    started = utcnow()

    first = run_round(engine, hook_settings, now=started)
    pending = client.get(
        "/v1/webhooks/deliveries?status=pending", headers=keys["admin"]
    ).json()
    early = run_round(engine, hook_settings, now=started + timedelta(seconds=30))
    later = run_round(engine, hook_settings, now=started + timedelta(seconds=61))

    assert first.retrying == 1
    assert pending[0]["attempts"] == 1
    assert pending[0]["last_status_code"] == 500
    assert pending[0]["last_error"] == "answered 500"
    assert early.delivered == 0
    assert later.delivered == 1
    assert len(receiver.requests) == 2
    assert receiver.requests[0][1] == receiver.requests[1][1]
    assert _deliveries(engine)[0].attempts == 2


def test_webhook_gives_up_then_admin_retries(
    client, keys, engine, receiver, hook_settings
):
    receiver.statuses.extend([503, 503, 503])
    _register(client, keys, receiver.url)
    _book_line(client, keys)
    now = utcnow()
    for attempt in range(hook_settings.max_attempts):
        run_round(engine, hook_settings, now=now + timedelta(hours=attempt))

    failed = client.get(
        "/v1/webhooks/deliveries?status=failed", headers=keys["admin"]
    ).json()
    retried = client.post(
        f"/v1/webhooks/deliveries/{failed[0]['id']}/retry", headers=keys["admin"]
    )
    report = run_round(engine, hook_settings, now=utcnow() + timedelta(seconds=1))

    assert len(failed) == 1
    assert failed[0]["attempts"] == hook_settings.max_attempts
    assert retried.json()["status"] == "pending"
    assert report.delivered == 1
    assert len(receiver.requests) == hook_settings.max_attempts + 1


def test_webhook_unreachable_receiver_is_kept(client, keys, engine, hook_settings):
    _register(client, keys, "http://127.0.0.1:9/events")
    _book_line(client, keys)

    report = run_round(engine, hook_settings)

    delivery = _deliveries(engine)[0]
    assert report.retrying == 1
    assert delivery.status == "pending"
    assert delivery.last_status_code is None
    assert "Connect" in delivery.last_error


def test_webhook_disabled_endpoint_gets_no_new_events(
    client, keys, engine, receiver, hook_settings
):
    created = _register(client, keys, receiver.url)
    response = client.delete(f"/v1/webhooks/{created['id']}", headers=keys["admin"])
    _book_line(client, keys)

    run_round(engine, hook_settings)

    assert response.json()["active"] is False
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        pytest.param(1, 60, id="first"),
        pytest.param(3, 240, id="doubled"),
        pytest.param(20, 3600, id="capped"),
    ],
)
def test_webhook_backoff_doubles_up_to_cap(attempts, expected):
    settings = WebhookSettings(backoff_seconds=60, max_backoff_seconds=3600)

    assert backoff_seconds(attempts, settings) == expected


def test_webhook_dispatcher_thread_delivers(
    client, keys, engine, receiver, monkeypatch
):
    from service.webhooks import start_dispatcher

    _register(client, keys, receiver.url)
    _book_line(client, keys)
    monkeypatch.setenv("CASHMATCH_WEBHOOK_INTERVAL_SECONDS", "0.05")

    dispatcher = start_dispatcher(engine)
    try:
        for _ in range(200):
            if receiver.requests:
                break
            threading.Event().wait(0.05)
    finally:
        dispatcher.stop()

    assert len(receiver.requests) == 1
