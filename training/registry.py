"""Model files, MLflow runs and the registry of which model serves.

A trained `MatchModel` is saved with joblib under the model folder and, when
trained by `cashmatch train` or the demo, logged as an MLflow run and
registered as a new version of one registered model. The `model_version`
table records every model and marks the one that serves; the MLflow alias
`serving` follows it.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
from sqlmodel import Session, select

from matcher.pipeline import MatchModel
from models.errors import ModelNotReady
from models.tables import AuditEvent, ModelVersion, utcnow

log = logging.getLogger("cashmatch.training")

SERVING = "serving"
EXPERIMENT = "cashmatch"


def save_model(model: MatchModel, folder: Path) -> Path:
    """Write a model to `<folder>/<version>.joblib` and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model.version}.joblib"
    joblib.dump(model, path)
    return path


def load_model(path: Path) -> MatchModel:
    """Read a model file; raise ModelNotReady if it is missing or stale."""
    if not path.exists():
        raise ModelNotReady(
            f"model file {path} is missing; retrain with `cashmatch train` "
            "or promote another version with `cashmatch model promote`"
        )
    model = joblib.load(path)
    model.check()
    return model


def record_model(
    session: Session,
    model: MatchModel,
    path: Path,
    *,
    source: str,
    mlflow_run_id: str | None = None,
    registry_version: str | None = None,
) -> ModelVersion:
    """Add a model to the `model_version` table as a candidate."""
    row = session.get(ModelVersion, model.version)
    if row is None:
        row = ModelVersion(version=model.version, path=str(path))
    row.path = str(path)
    row.source = source
    row.metrics = _plain(model.metrics)
    row.mlflow_run_id = mlflow_run_id or row.mlflow_run_id
    row.registry_version = registry_version or row.registry_version
    session.add(row)
    session.flush()
    return row


def serving_row(session: Session) -> ModelVersion | None:
    """Return the model version that serves, if any."""
    return session.exec(
        select(ModelVersion).where(ModelVersion.status == SERVING)
    ).first()


def promote(session: Session, version: str, *, actor: str) -> ModelVersion:
    """Make `version` the serving model; the previous one is retired.

    Raises ModelNotReady when the version is unknown or its file no longer
    loads, because the API would then fail on every request.
    """
    row = session.get(ModelVersion, version)
    if row is None:
        raise ModelNotReady(
            f"model version {version!r} is unknown; `cashmatch model list` "
            "shows the versions"
        )
    load_model(Path(row.path))
    previous = serving_row(session)
    if previous is not None and previous.version != version:
        previous.status = "retired"
        session.add(previous)
    row.status = SERVING
    row.promoted_at = utcnow()
    session.add(row)
    session.add(
        AuditEvent(
            actor=actor,
            action="promote",
            entity="model_version",
            entity_id=version,
            detail={"previous": previous.version if previous else None},
        )
    )
    session.flush()
    log.info(
        "model %s promoted by %s (was %s)",
        version,
        actor,
        previous.version if previous else "none",
    )
    return row


def rollback(session: Session, *, actor: str) -> ModelVersion:
    """Serve the model that served before the current one."""
    current = serving_row(session)
    query = (
        select(ModelVersion)
        .where(ModelVersion.status == "retired", ModelVersion.promoted_at.is_not(None))
        .order_by(ModelVersion.promoted_at.desc())
    )
    previous = session.exec(query).first()
    if previous is None:
        raise ModelNotReady("no earlier serving model to roll back to")
    row = promote(session, previous.version, actor=actor)
    if current is not None:
        current.status = "rolled_back"
        session.add(current)
    return row


def list_models(session: Session) -> list[ModelVersion]:
    """Return every recorded model, newest first."""
    query = select(ModelVersion).order_by(ModelVersion.created_at.desc())
    return list(session.exec(query).all())


@dataclass
class RunRecord:
    """The saved model file, its MLflow run and its registry version."""

    path: str
    run_id: str
    registry_version: str | None


def log_to_mlflow(
    model: MatchModel,
    path: Path,
    *,
    tracking_uri: str,
    registry_name: str,
    params: dict,
    tags: dict | None = None,
    extra_metrics: dict[str, float] | None = None,
    artifacts: list[Path] = (),
) -> RunRecord:
    """Log a training run with its metrics, artifacts and model, and register it.

    The run records the parameters, the model's metrics, the feature
    importance, the given artifacts (such as the calibration plot) and the
    model file. The file is then registered as a new version of
    `registry_name`.
    """
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = _experiment(mlflow, tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags({"model_version": model.version, **(tags or {})})
        mlflow.log_params({k: str(v)[:250] for k, v in params.items()})
        mlflow.log_metrics(_numbers({**model.metrics, **(extra_metrics or {})}))
        mlflow.log_artifact(str(path), artifact_path="model")
        _log_importance(mlflow, model)
        for artifact in artifacts:
            mlflow.log_artifact(str(artifact), artifact_path="evaluation")
        source = f"{run.info.artifact_uri}/model"

    client = MlflowClient(tracking_uri=tracking_uri)
    if not client.search_registered_models(f"name = '{registry_name}'"):
        client.create_registered_model(registry_name)
    version = client.create_model_version(
        registry_name,
        source,
        run_id=run.info.run_id,
        tags={"model_version": model.version},
    )
    log.info(
        "logged model %s as MLflow run %s, registry version %s",
        model.version,
        run.info.run_id,
        version.version,
    )
    return RunRecord(str(path), run.info.run_id, str(version.version))


def set_serving_alias(tracking_uri: str, registry_name: str, registry_version: str):
    """Point the registry's `serving` alias at a registered version.

    The `model_version` table decides what serves; the alias only mirrors
    it, so a tracking server that cannot be reached is logged, not raised.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        client.set_registered_model_alias(registry_name, SERVING, registry_version)
    except (MlflowException, OSError) as exc:
        log.warning(
            "MLflow alias %s of %s not moved to version %s: %s",
            SERVING,
            registry_name,
            registry_version,
            exc,
        )


def sync_serving_alias(
    session: Session, tracking_uri: str, registry_name: str
) -> str | None:
    """Move the MLflow `serving` alias to the serving model's registry version."""
    row = serving_row(session)
    if row is None or not row.registry_version:
        return None
    set_serving_alias(tracking_uri, registry_name, row.registry_version)
    return row.registry_version


def tag_run(tracking_uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Add tags to a finished run; a failure is logged, not raised."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
    except (MlflowException, OSError) as exc:
        log.warning("MLflow run %s not tagged with %s: %s", run_id, sorted(tags), exc)


def _experiment(mlflow, tracking_uri: str) -> str:
    found = mlflow.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return found.experiment_id
    artifacts = None
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        artifacts = (database.parent / "artifacts").resolve().as_uri()
    return mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)


def _log_importance(mlflow, model: MatchModel) -> None:
    importance = model.ranker.feature_importance()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "feature_importance.json"
        ranked = sorted(importance.items(), key=lambda item: -item[1])
        path.write_text(json.dumps(dict(ranked), indent=2))
        mlflow.log_artifact(str(path))


def _numbers(metrics: dict) -> dict[str, float]:
    # MLflow rejects NaN on some stores; a figure without lines is left out.
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def _plain(metrics: dict) -> dict:
    # JSON has no NaN; a figure without lines is stored as null.
    cleaned = {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in metrics.items()
    }
    return json.loads(json.dumps(cleaned, default=str))
