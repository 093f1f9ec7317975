"""Schema fuzzing of the API with schemathesis, on SQLite and PostgreSQL.

Every operation of the OpenAPI document gets generated requests, valid and
invalid ones, sent to the ASGI app with an admin key. No response may be a
server error, and every response must match the schema the app publishes
(status code, content type, headers and body).

The database contains customers, orders, booked lines and review tasks first,
and generated record ids of valid requests are folded onto stored ones, so
the fuzzer reaches past "not found". Set CASHMATCH_FUZZ_EXAMPLES for a
deeper run than the default examples per operation.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from models.db import session_scope
from service.app import create_app
from service.auth import create_api_key
from service.settings import Settings

pytestmark = pytest.mark.schemathesis

EXAMPLES = int(os.environ.get("CASHMATCH_FUZZ_EXAMPLES", "15"))
CHECKS_CONFIG = {
    # A schema-valid request can still break a booking rule (allocations
    # that do not add up to the line, a line without a suggestion, an empty
    # file), and the API rejects those with 422.
    "positive_data_acceptance": {"enabled": False},
    # An invalid body larger than CASHMATCH_MAX_UPLOAD_BYTES is rejected
    # with 413 before it is read; that is a rejection too.
    "negative_data_rejection": {
        "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428]
    },
}
RECORD_ID_PARAMETERS = ("line_id", "task_id", "batch_id")

CUSTOMERS = [
    {"customer_id": "C1", "name": "恒达机械有限公司", "bank_accounts": ["6222001"]},
    {"customer_id": "C2", "name": "张伟", "bank_accounts": ["6222020012344567"]},
]
ORDERS = [
    {
        "order_id": f"SO-95{index:02d}",
        "customer_id": "C1" if index % 2 else "C2",
        "order_date": "2025-06-01",
        "amount": f"{100 * index}.00",
        "open_amount": f"{100 * index}.00",
    }
    for index in range(1, 7)
]
LINES = [
    {
        "line_ref": "F1",
        "booking_date": "2025-06-10",
        "amount": "100.00",
        "memo": "SO-9501",
        "counterparty_name": "恒达机械有限公司",
        "counterparty_account": "6222001",
    },
    {
        "line_ref": "F2",
        "booking_date": "2025-06-10",
        "amount": "250.00",
        "memo": "货款",
        "counterparty_name": "张伟",
    },
    {
        "line_ref": "F3",
        "booking_date": "2025-06-11",
        "amount": "-80.00",
        "memo": "refund",
    },
    {"line_ref": "F4", "booking_date": "2025-06-12", "amount": "55.55"},
]
INVOICES = [{"invoice_id": "INV-1", "order_ids": ["SO-9502"], "amount": "200.00"}]
KNOWN_TEXT_IDS = {
    "customer_id": ["C1", "C2"],
    "order_id": [order["order_id"] for order in ORDERS],
    "invoice_id": ["INV-1"],
}


@pytest.fixture
def fuzz_target(database_url, engine, tmp_path, cold_start_dir, monkeypatch):
    """Return the app's schemathesis schema, an admin key and stored ids."""
    # Generated webhook URLs name arbitrary hosts; nothing may be sent there.
    monkeypatch.setenv("CASHMATCH_WEBHOOK_INTERVAL_SECONDS", "0")
    settings_ = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        cold_start_dir=cold_start_dir,
        max_upload_bytes=64 * 1024,
    )
    app = create_app(settings_, engine=engine, review_page=False)
    with session_scope(engine) as session:
        key = create_api_key(session, "fuzz-admin", role="admin", actor="test")
    headers = {"X-API-Key": key}
    with TestClient(app) as client:
        _seed(client, headers)
        stored = _stored_ids(client, headers)
        config = SchemathesisConfig.from_dict({"checks": CHECKS_CONFIG})
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        yield schema, headers, stored


def _seed(client: TestClient, headers: dict) -> None:
    for path, body in (
        ("/v1/customers", {"customers": CUSTOMERS}),
        ("/v1/orders", {"orders": ORDERS}),
        ("/v1/invoices", {"invoices": INVOICES}),
    ):
        assert client.put(path, headers=headers, json=body).status_code == 200
    response = client.post("/v1/match", headers=headers, json={"lines": LINES})
    assert response.status_code == 200


def _stored_ids(client: TestClient, headers: dict) -> dict[str, int]:
    tasks = client.get("/v1/review-tasks", headers=headers).json()
    return {
        "line_id": len(LINES),
        "task_id": max(tasks["total"], 1),
        "batch_id": 1,
    }


def _fold_onto_stored(case, stored: dict[str, int]) -> None:
    # Generated ids are spread over 1 to 2**31 - 1 and would almost never
    # name a stored record. Folding them keeps one id in (count + 1) unknown,
    # so "not found" is still exercised.
    parameters = case.path_parameters or {}
    for name in RECORD_ID_PARAMETERS:
        value = parameters.get(name)
        if isinstance(value, int) and value > 0:
            parameters[name] = (value - 1) % (stored[name] + 1) + 1
    for name, known in KNOWN_TEXT_IDS.items():
        value = parameters.get(name)
        if isinstance(value, str):
            index = len(value) % (len(known) + 1)
            parameters[name] = known[index] if index < len(known) else value


def _fuzz_operation(operation, mode, headers, stored) -> str | None:
    """Run one operation in one generation mode; return a failure report."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        if mode == GenerationMode.POSITIVE:
            _fold_onto_stored(case, stored)
        case.call_and_validate(headers=headers)

    try:
        run()
    except Unsatisfiable:
        # Operations without parameters or body have no invalid request.
        return None
    except (Exception, BaseExceptionGroup) as failure:  # noqa: BLE001
        # A server exception surfaces here as itself, because the test
        # client re-raises it; report it with the operation's other failures.
        return f"{operation.label} ({mode.value}):\n{failure}"
    return None


def test_api_schema_fuzz_finds_no_failure(fuzz_target):
    schema, headers, stored = fuzz_target
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25

    failures = [
        report
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (report := _fuzz_operation(operation, mode, headers, stored))
    ]

    assert not failures, "\n\n".join(failures)
