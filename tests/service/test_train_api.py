"""Training through the API and after new labels; the served version follows."""

from __future__ import annotations

import threading
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from models.db import session_scope
from models.tables import AuditEvent, ModelVersion, ReviewTask, StatementLine
from service.app import create_app
from service.cases import load_master_folder, read_history, store_history
from service.settings import Settings
from service.train import (
    JOB_ENTITY,
    RetrainTrigger,
    TrainingJobs,
    last_training_start,
    new_labels_since,
)
from training.registry import serving_row
from training.synthetic import generate_case, write_case


@pytest.fixture(scope="module")
def case_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("case")
    case = generate_case(
        seed=6, customers=15, open_orders=150, lines=10, history_lines=200
    )
    write_case(case, folder)
    return folder


@pytest.fixture
def settings(database_url, tmp_path, cold_start_dir, mlflow_uri) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        cold_start_dir=cold_start_dir,
        mlflow_tracking_uri=mlflow_uri,
        mlflow_registry_name=f"ranker-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
def labelled(engine, settings, case_folder):
    """A database whose case history gives about 200 labelled lines."""
    with session_scope(engine) as session:
        load_master_folder(session, case_folder)
        store_history(session, read_history(case_folder, settings), settings)
    return engine


def _keys(engine) -> dict[str, dict[str, str]]:
    from service.auth import create_api_key

    with session_scope(engine) as session:
        return {
            role: {
                "X-API-Key": create_api_key(session, f"{role}-1", role=role, actor="t")
            }
            for role in ("erp", "clerk", "analyst", "admin")
        }


def _review_tasks(engine, count: int) -> list[int]:
    """Store lines waiting for review, each showing one balance candidate."""
    ids = []
    with session_scope(engine) as session:
        customer = session.exec(
            select(StatementLine.customer_id).where(
                StatementLine.customer_id.is_not(None)
            )
        ).first()
        for i in range(count):
            line = StatementLine(
                account="default",
                line_ref=f"R{i}",
                dedupe_key=f"review-{i}",
                booking_date=date(2024, 11, 20),
                amount=Decimal("88.00"),
                counterparty_name="新付款人",
                status="review",
                decision="review",
                confidence=0.4,
                model_version="m-test",
                suggestion={
                    "reasons": [],
                    "candidates": [
                        {
                            "kind": "balance",
                            "customer_id": customer,
                            "orders": [],
                            "balance": "88.00",
                            "fees": [],
                            "reasons": [],
                            "score": 0.5,
                        }
                    ],
                },
            )
            session.add(line)
            session.flush()
            task = ReviewTask(line_id=line.id)
            session.add(task)
            session.flush()
            ids.append(task.id)
    return ids


def test_train_api_needs_train_role(labelled, settings):
    keys = _keys(labelled)
    app = create_app(settings, engine=labelled, review_page=False)
    with TestClient(app) as client:
        clerk = client.post("/v1/models/train", json={}, headers=keys["clerk"])
        erp = client.post("/v1/models/train", json={}, headers=keys["erp"])

    assert clerk.status_code == 403
    assert erp.status_code == 403
    assert clerk.json()["code"] == "forbidden"


def test_train_api_runs_job_and_serves_new_version(labelled, settings):
    keys = _keys(labelled)
    app = create_app(settings, engine=labelled, review_page=False)
    with TestClient(app) as client:
        before = client.post(
            "/v1/match",
            json={"lines": [_line("M1")], "dry_run": True},
            headers=keys["erp"],
        ).json()["model_version"]
        # Forced, because on generated data the cold-start model is hard to beat.
        started = client.post(
            "/v1/models/train", json={"force": True}, headers=keys["analyst"]
        )
        busy = client.post("/v1/models/train", json={}, headers=keys["admin"])
        assert app.state.training_jobs.wait(timeout=300)
        job = client.get(
            f"/v1/models/training-jobs/{started.json()['job_id']}",
            headers=keys["clerk"],
        ).json()
        after = client.post(
            "/v1/match",
            json={"lines": [_line("M2")], "dry_run": True},
            headers=keys["erp"],
        ).json()["model_version"]
        models = client.get("/v1/models", headers=keys["clerk"]).json()
        missing = client.get("/v1/models/training-jobs/nope", headers=keys["clerk"])

    assert started.status_code == 202, started.text
    assert started.json()["state"] == "running"
    assert busy.status_code == 409
    assert busy.json()["code"] == "training_busy"
    assert job["state"] == "finished", job
    assert job["detail"]["promoted"] is True
    assert before.startswith("cold-start")
    assert after == job["detail"]["version"]
    assert models[0]["version"] == after
    assert models[0]["status"] == "serving"
    assert missing.status_code == 404


def _line(line_ref: str) -> dict:
    return {
        "line_ref": line_ref,
        "booking_date": "2024-11-05",
        "amount": "1234.00",
        "counterparty_name": "某公司",
        "memo": "货款",
    }


def test_model_api_promote_and_roll_back(labelled, settings):
    keys = _keys(labelled)
    app = create_app(settings, engine=labelled, review_page=False)
    with TestClient(app) as client:
        nothing_earlier = client.post("/v1/models/rollback", headers=keys["admin"])
        unknown = client.post("/v1/models/m-nope/promote", headers=keys["analyst"])
        clerk = client.post("/v1/models/m-nope/promote", headers=keys["clerk"])
        app.state.training_jobs.start(actor="test", trigger="test", force=True)
        assert app.state.training_jobs.wait(timeout=300)
        with Session(labelled) as session:
            cold = session.exec(
                select(ModelVersion).where(ModelVersion.source == "cold_start")
            ).one()
        promoted = client.post(
            f"/v1/models/{cold.version}/promote", headers=keys["analyst"]
        )
        rolled = client.post("/v1/models/rollback", headers=keys["analyst"])

    assert nothing_earlier.status_code == 409
    assert nothing_earlier.json()["code"] == "no_earlier_model"
    assert unknown.status_code == 404
    assert clerk.status_code == 403
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["status"] == "serving"
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] != cold.version


def test_retrain_after_labels_runs_in_background(labelled, settings, monkeypatch):
    monkeypatch.setenv("CASHMATCH_RETRAIN_AFTER_LABELS", "3")
    keys = _keys(labelled)
    tasks = _review_tasks(labelled, 3)
    training_threads: list[str] = []
    app = create_app(settings, engine=labelled, review_page=False)
    trigger = app.state.retrain_trigger
    original = app.state.training_jobs._run

    def record_thread(*args):
        training_threads.append(threading.current_thread().name)
        return original(*args)

    app.state.training_jobs._run = record_thread
    with TestClient(app) as client:
        for task_id in tasks[:2]:
            decided = client.post(
                f"/v1/review-tasks/{task_id}/decision",
                json={"action": "accept"},
                headers=keys["clerk"],
            )
            assert decided.status_code == 200, decided.text
            _wait_check(trigger)
        with Session(labelled) as session:
            assert _jobs(session) == []
        third = client.post(
            f"/v1/review-tasks/{tasks[2]}/decision",
            json={"action": "accept"},
            headers=keys["clerk"],
        )
        _wait_check(trigger)
        assert app.state.training_jobs.wait(timeout=300)
    installed = event.contains(OrmSession, "after_commit", trigger._after_commit)

    assert third.status_code == 200, third.text
    with Session(labelled) as session:
        jobs = _jobs(session)
        assert [job.actor for job in jobs] == ["retrain-trigger"] * 2
        assert jobs[0].detail["trigger"] == "3 new labels"
        assert jobs[1].action == "training_finished"
        assert new_labels_since(session, last_training_start(session)) == 0
    assert training_threads and training_threads[0].startswith("cashmatch-training-")
    assert not installed


def _wait_check(trigger: RetrainTrigger) -> None:
    thread = trigger.last_check
    if thread is not None:
        thread.join(timeout=30)


def _jobs(session) -> list[AuditEvent]:
    return list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.entity == JOB_ENTITY)
            .order_by(AuditEvent.id)
        ).all()
    )


def test_retrain_trigger_ignores_other_engines(labelled, settings):
    jobs = TrainingJobs(labelled, settings)
    trigger = RetrainTrigger(jobs, threshold=1)
    other = settings.model_copy(update={"database_url": "sqlite://"})
    from models.db import make_engine, migrate

    elsewhere = make_engine(other.database_url)
    migrate(elsewhere)
    trigger.install()
    try:
        _review_tasks(elsewhere, 1)
        with session_scope(elsewhere) as session:
            from models.tables import Label

            session.add(Label(line_id=1, action="accept", actor="clerk"))
    finally:
        trigger.uninstall()
        elsewhere.dispose()

    assert trigger.last_check is None
    with Session(labelled) as session:
        assert serving_row(session) is None
