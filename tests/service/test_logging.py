"""Service logs: JSON or text lines, request ids, and no secrets in them."""

from __future__ import annotations

import importlib
import io
import json
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from models.db import session_scope
from service.app import create_app
from service.auth import sign_in, upsert_user
from service.logging_setup import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    redact,
    register_secret,
    uvicorn_log_config,
)
from service.settings import Settings

PASSWORD = "correct-horse-battery"
WEBHOOK_SECRET = "whsec-logging-0123456789"
PAYER_ACCOUNT = "6222020012344567"


@pytest.fixture
def log_stream(request):
    """Return a buffer that the `cashmatch` loggers write to, in one format."""
    buffer = io.StringIO()
    root = logging.getLogger("cashmatch")
    saved = (list(root.handlers), root.level)
    configure_logging(logging.INFO, fmt=request.param, stream=buffer)
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir, monkeypatch):
    monkeypatch.setenv("CASHMATCH_WEBHOOK_INTERVAL_SECONDS", "0")
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    app = create_app(settings, engine=engine, review_page=False)

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError(f"payer {PAYER_ACCOUNT} broke it")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _json_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line]


@pytest.mark.parametrize("log_stream", ["json"], indirect=True)
def test_logging_json_one_object_per_line(client, keys, log_stream):
    response = client.get(
        "/v1/lines/999", headers={**keys["erp"], "X-Request-ID": "req-42"}
    )

    entries = _json_lines(log_stream)
    failed = [e for e in entries if e["message"].startswith("request failed")]
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "req-42"
    assert len(failed) == 1
    assert failed[0]["request_id"] == "req-42"
    assert failed[0]["status"] == 404
    assert failed[0]["level"] == "WARNING"
    assert failed[0]["path"] == "/v1/lines/999"
    assert failed[0]["key_prefix"] == keys["erp"]["X-API-Key"][:10]


@pytest.mark.parametrize("log_stream", ["text"], indirect=True)
def test_logging_text_is_not_json(client, keys, log_stream):
    response = client.get("/v1/lines/999", headers=keys["erp"])

    line = log_stream.getvalue().splitlines()[-1]
    assert line.startswith("20")
    assert f"[{response.headers['X-Request-ID']}]" in line
    assert "WARNING cashmatch.service" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="missing"),
        pytest.param("x" * 200, id="too-long"),
        pytest.param("bad id\twith tab", id="bad-characters"),
    ],
)
def test_request_id_invalid_is_replaced(client, header):
    headers = {"X-Request-ID": header} if header else {}

    response = client.get("/healthz", headers=headers)

    assert len(response.headers["X-Request-ID"]) == 32
    assert response.headers["X-Request-ID"] != header


@pytest.mark.parametrize("log_stream", ["json"], indirect=True)
def test_logging_server_error_has_id_and_trace(client, log_stream):
    response = client.get("/boom", headers={"X-Request-ID": "req-boom"})

    entries = [e for e in _json_lines(log_stream) if e["level"] == "ERROR"]
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "req-boom" in response.json()["detail"]
    assert response.headers["X-Request-ID"] == "req-boom"
    assert entries[0]["request_id"] == "req-boom"
    assert "RuntimeError" in entries[0]["exception"]
    assert PAYER_ACCOUNT not in log_stream.getvalue()
    assert "6222****4567" in entries[0]["message"]


@pytest.mark.parametrize("log_stream", ["json", "text"], indirect=True)
def test_logging_never_writes_secrets(client, keys, engine, log_stream):
    key = keys["admin"]["X-API-Key"]
    with session_scope(engine) as session:
        upsert_user(session, "clerk-7", role="clerk", password=PASSWORD)
        assert sign_in(session, "clerk-7", PASSWORD + "x") is None
    client.get("/v1/feed", headers={"X-API-Key": key + "tampered"})
    client.get("/v1/feed", headers={"Authorization": f"Bearer {key}"})
    client.post("/v1/match", headers={"X-API-Key": key}, json={"lines": []})
    client.post(
        "/v1/webhooks",
        headers=keys["admin"],
        json={"url": "http://127.0.0.1:9/x", "secret": WEBHOOK_SECRET},
    )
    logging.getLogger("cashmatch.test").warning(
        "retrying with api_key=%s password: %s", key, PASSWORD
    )

    text = log_stream.getvalue()
    assert "webhook 1 registered" in text
    assert "request failed" in text
    for secret in (key, key[10:], PASSWORD, WEBHOOK_SECRET):
        assert secret not in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "key cm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg",
            "key cm_AbCdEfG[key]",
            id="api-key",
        ),
        pytest.param("password=hunter22 next", "password=[secret] next", id="assign"),
        pytest.param(
            "payer 6222 0200 1234 4567 paid", "payer 6222****4567 paid", id="account"
        ),
        pytest.param("order SO-9501 of 730.00", "order SO-9501 of 730.00", id="plain"),
    ],
)
def test_redact_hides_secrets(text, expected):
    assert redact(text) == expected


def test_redact_hides_sql_parameters():
    error = IntegrityError(
        "INSERT INTO webhook_endpoint (url, secret) VALUES (?, ?)",
        ("http://x", "whsec-param-secret-123"),
        Exception("UNIQUE constraint failed"),
    )

    text = redact(str(error))

    assert "whsec-param-secret-123" not in text
    assert "[parameters: hidden]" in text
    assert "INSERT INTO webhook_endpoint" in text


def test_redact_hides_registered_secret():
    register_secret("an-exact-secret-value")

    assert redact("sent with an-exact-secret-value") == "sent with [secret]"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_uvicorn_log_config_uses_format(fmt, monkeypatch):
    monkeypatch.setenv("CASHMATCH_LOG_FORMAT", fmt)

    config = uvicorn_log_config()

    factory = config["formatters"][fmt]["()"]
    module, _, name = factory.rpartition(".")
    formatter = getattr(importlib.import_module(module), name)()
    assert config["handlers"]["default"]["formatter"] == fmt
    assert set(config["loggers"]) >= {"cashmatch", "uvicorn.access"}
    assert isinstance(formatter, (JsonFormatter, TextFormatter))
