"""`cashmatch train` and `cashmatch model`: MLflow runs, promotion, roll back."""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.db import session_scope
from models.tables import AuditEvent, ModelVersion
from service.cases import load_master_folder, read_history, store_history
from service import train as train_service
from service.cli import app
from service.serving import current_model
from service.settings import Settings
from service.train import learn, prepare_training
from training.registry import serving_row
from training.synthetic import generate_case, write_case


@pytest.fixture(scope="module")
def case_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("case")
    case = generate_case(
        seed=5, customers=15, open_orders=150, lines=20, history_lines=200
    )
    write_case(case, folder)
    return folder


@pytest.fixture
def cli_env(monkeypatch, tmp_path, database_url, mlflow_uri, cold_start_dir):
    """Point the CLI at a fresh database, the shared MLflow store, a new registry."""
    registry = f"ranker-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CASHMATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("CASHMATCH_MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("CASHMATCH_MLFLOW_REGISTRY_NAME", registry)
    return Settings()


def _load(engine, folder: Path, settings: Settings, *, history: bool = True) -> None:
    with session_scope(engine) as session:
        load_master_folder(session, folder)
        if history:
            store_history(session, read_history(folder, settings), settings)


def test_train_too_few_labels_exits_nonzero(cli_env, engine, case_folder):
    _load(engine, case_folder, cli_env, history=False)

    result = CliRunner().invoke(app, ["train"])

    assert result.exit_code == 1
    assert "training needs at least 50 labelled lines" in result.output
    assert "the database has 0" in result.output
    assert "review 50 more lines" in result.output


def test_train_logs_run_and_promotes(cli_env, engine, case_folder):
    _load(engine, case_folder, cli_env)

    result = CliRunner().invoke(app, ["train"])

    assert result.exit_code == 0, result.output
    assert "serves now" in result.output
    with Session(engine) as session:
        row = serving_row(session)
        assert row.source == "labels"
        assert row.metrics["eval_allocation_accuracy"] > 0.5
        trained = session.exec(
            select(AuditEvent).where(AuditEvent.action == "train")
        ).one()
    assert trained.detail["promoted"] is True
    _check_mlflow_run(cli_env, row)


def _check_mlflow_run(settings: Settings, row: ModelVersion) -> None:
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    run = client.get_run(row.mlflow_run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags

    assert params["source"] == "labels"
    assert int(params["labels_lines"]) >= 150
    assert params["labels_from_history"] == params["labels_lines"]
    assert params["eval_from"] > params["train_from"]
    assert "train_n_estimators" in params
    assert 0.0 < metrics["eval_allocation_accuracy"] <= 1.0
    assert "eval_top1_accuracy" in metrics
    assert "eval_automation_rate" in metrics
    assert "validation_top1_accuracy" in metrics
    assert tags["model_version"] == row.version
    assert tags["promoted"] == "true"

    artifacts = {a.path for a in client.list_artifacts(row.mlflow_run_id)}
    assert "feature_importance.json" in artifacts
    evaluation = {
        a.path for a in client.list_artifacts(row.mlflow_run_id, "evaluation")
    }
    assert evaluation == {
        "evaluation/calibration.png",
        "evaluation/calibration.json",
        "evaluation/evaluation.json",
    }
    model_files = {a.path for a in client.list_artifacts(row.mlflow_run_id, "model")}
    assert f"model/{row.version}.joblib" in model_files

    serving = client.get_model_version_by_alias(
        settings.mlflow_registry_name, "serving"
    )
    assert str(serving.version) == row.registry_version


def test_model_commands_promote_and_roll_back(cli_env, engine, case_folder):
    runner = CliRunner()
    _load(engine, case_folder, cli_env)
    first = runner.invoke(app, ["train"])
    again = runner.invoke(app, ["train", "--no-promote", "--eval-from", "2024-10-15"])
    with Session(engine) as session:
        versions = [row.version for row in session.exec(select(ModelVersion)).all()]
        serving = serving_row(session).version
    other = next(v for v in versions if v != serving and not v.startswith("cold"))

    promoted = runner.invoke(app, ["model", "promote", other])
    listed = runner.invoke(app, ["model", "list"])
    rolled = runner.invoke(app, ["model", "rollback"])
    unknown = runner.invoke(app, ["model", "promote", "m-unknown"])

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "not promoted (promotion not requested" in again.output
    assert promoted.exit_code == 0, promoted.output
    assert f"* {other}" in listed.output
    assert "accuracy" in listed.output
    assert rolled.exit_code == 0, rolled.output
    assert f"model {serving} now serves" in rolled.output
    assert unknown.exit_code == 1
    assert "m-unknown" in unknown.output
    alias = MlflowClient(tracking_uri=cli_env.mlflow_tracking_uri)
    with Session(engine) as session:
        row = serving_row(session)
    found = alias.get_model_version_by_alias(cli_env.mlflow_registry_name, "serving")
    assert row.version == serving
    assert str(found.version) == row.registry_version


def test_train_from_case_folder(cli_env, engine, case_folder):
    result = CliRunner().invoke(app, ["train", "--case", str(case_folder)])

    assert result.exit_code == 0, result.output
    assert f"labelled lines of case {case_folder.name}" in result.output
    assert "latest period: top-1" in result.output


@pytest.fixture
def prepared(cli_env, engine, case_folder):
    with session_scope(engine) as session:
        current_model(session, cli_env)
        return prepare_training(session, cli_env, case=case_folder)


def test_learn_in_worker_evaluates_serving_model_alike(prepared):
    alone = learn(prepared, workers=1)
    beside = learn(prepared, workers=2)

    assert beside.serving is not None
    assert beside.serving_error is None
    # A group with no automatic lines has no precision: NaN in both.
    assert beside.serving.summary() == pytest.approx(
        alone.serving.summary(), nan_ok=True
    )
    assert beside.serving.line_refs == alone.serving.line_refs
    assert beside.evaluation.summary() == pytest.approx(
        alone.evaluation.summary(), nan_ok=True
    )
    assert beside.reason == alone.reason


def test_learn_fit_error_stops_worker(prepared, monkeypatch):
    def failing_fit(*args, **kwargs):
        raise RuntimeError("fit failed")

    monkeypatch.setattr(train_service, "run_learning", failing_fit)

    with pytest.raises(RuntimeError, match="fit failed"):
        learn(prepared, workers=2)
    assert multiprocessing.active_children() == []
