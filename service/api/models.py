"""Routes for models and their quality: list, train, promote, roll back, audit.

`POST /v1/models/train` starts a background job and returns at once with
its id, and `GET /v1/models/training-jobs/{job_id}` returns how it went.
Analysts and admins may train and choose the serving model. Clerks and
admins record audit verdicts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from models.errors import ModelNotReady
from models.tables import ModelVersion
from service.api import schemas
from service.api.deps import (
    Caller,
    Idempotency,
    RecordId,
    SessionDep,
    SettingsDep,
    idempotent_write,
    rejections_audited,
    require,
)
from service.api.errors import ApiError
from service.auditing import NotAnAudit, audit_summary, record_verdict
from service.booking import Part
from service.train import (
    RetrainTrigger,
    TrainingBusy,
    TrainingJobs,
    TrainingSettings,
    job_status,
)
from training.registry import list_models, promote, rollback, sync_serving_alias

router = APIRouter(prefix="/v1", tags=["models"])

Reader = Annotated[Caller, Depends(require("read"))]
TrainWrite = Annotated[Idempotency, Depends(idempotent_write("train"))]
ReviewWrite = Annotated[Idempotency, Depends(idempotent_write("review"))]


class ModelPublic(BaseModel):
    """A trained model, its status and the figures of its evaluation."""

    model_config = ConfigDict(from_attributes=True)

    version: str
    status: str
    source: str
    created_at: datetime
    promoted_at: datetime | None
    mlflow_run_id: str | None
    registry_version: str | None
    metrics: dict | None


class TrainRequest(schemas.RequestModel):
    """Options of a training run started through the API."""

    promote: bool = Field(
        default=True, description="Serve the new model when it beats the serving one"
    )
    force: bool = Field(
        default=False, description="Serve the new model even when it does not"
    )


class TrainingJobPublic(BaseModel):
    """A background training job and, once it ended, its outcome."""

    job_id: str
    state: Literal["running", "finished", "failed"]
    actor: str
    started_at: datetime | None
    finished_at: datetime | None
    detail: dict


class RatePublic(BaseModel):
    """A share with its counts and Wilson 95 % interval; null when no count."""

    hits: int
    total: int
    value: float | None
    low: float | None
    high: float | None


class AuditSummaryPublic(BaseModel):
    """The running estimate of the precision of automatic decisions."""

    precision: RatePublic
    right: int
    wrong: int
    pending: int
    by_week: dict[str, RatePublic]
    by_model: dict[str, RatePublic]


class AuditVerdictRequest(schemas.RequestModel):
    """A clerk's verdict on an audited automatic decision.

    With `wrong`, `allocations` rebook the line at once; without them the
    line returns to the review queue.
    """

    verdict: Literal["right", "wrong"]
    note: str = Field(default="", max_length=300)
    allocations: list[schemas.AllocationCreate] | None = None


class AuditVerdictPublic(BaseModel):
    """The recorded verdict and the line's status after it."""

    task_id: int
    line_id: int
    verdict: Literal["right", "wrong"]
    line_status: str
    label_id: int | None
    requeued_task_id: int | None


def install(app: FastAPI) -> None:
    """Add the routes, the background training runner and the label trigger.

    The trigger listens only when CASHMATCH_RETRAIN_AFTER_LABELS is above 0,
    and only while the app serves: it joins the app's lifespan.
    """
    jobs = TrainingJobs(app.state.engine, app.state.settings)
    app.state.training_jobs = jobs
    app.state.retrain_trigger = None
    threshold = TrainingSettings().retrain_after_labels
    if threshold:
        trigger = RetrainTrigger(jobs, threshold)
        app.state.retrain_trigger = trigger
        app.router.lifespan_context = _listening(app.router.lifespan_context, trigger)
    app.include_router(router)


def _listening(lifespan, trigger: RetrainTrigger):
    """Wrap an app lifespan so the trigger listens while the app serves."""

    @asynccontextmanager
    async def serve(app: FastAPI) -> AsyncIterator:
        trigger.install()
        try:
            async with lifespan(app) as state:
                yield state
        finally:
            trigger.uninstall()

    return serve


def training_jobs(request: Request) -> TrainingJobs:
    """Return the app's background training runner."""
    return request.app.state.training_jobs


@router.get("/models", response_model=list[ModelPublic])
def get_models(session: SessionDep, caller: Reader) -> list[ModelVersion]:
    """List trained models, newest first."""
    return list_models(session)


@router.post("/models/train", response_model=TrainingJobPublic, status_code=202)
def start_training(
    body: TrainRequest,
    session: SessionDep,
    write: TrainWrite,
    jobs: Annotated[TrainingJobs, Depends(training_jobs)],
    background: BackgroundTasks,
) -> TrainingJobPublic:
    """Start training in the background on the labels; return the job.

    The job starts once this request has committed its record.
    """
    try:
        job_id = jobs.reserve(session, actor=write.actor, trigger="api")
    except TrainingBusy as exc:
        raise ApiError(409, "training_busy", str(exc)) from exc
    background.add_task(
        jobs.launch,
        job_id,
        actor=write.actor,
        trigger="api",
        promote_new=body.promote,
        force=body.force,
    )
    status = job_status(session, job_id)
    return write.finish(_job_public(status), 202)


@router.get("/models/training-jobs/{job_id}", response_model=TrainingJobPublic)
def get_training_job(
    job_id: Annotated[str, Path(min_length=1, max_length=64)],
    session: SessionDep,
    caller: Reader,
) -> TrainingJobPublic:
    """Return a training job's state and, once ended, its outcome."""
    status = job_status(session, job_id)
    if status is None:
        raise ApiError(404, "job_not_found", f"training job {job_id!r} does not exist")
    return _job_public(status)


@router.post("/models/{version}/promote", response_model=ModelPublic)
def promote_model(
    version: Annotated[str, Path(min_length=1, max_length=64)],
    session: SessionDep,
    settings: SettingsDep,
    write: TrainWrite,
) -> ModelPublic:
    """Serve this model version from the next request on."""
    if session.get(ModelVersion, version) is None:
        raise ApiError(
            404, "model_not_found", f"model version {version!r} does not exist"
        )
    row = promote(session, version, actor=write.actor)
    _sync_alias(session, settings)
    return write.finish(ModelPublic.model_validate(row))


@router.post("/models/rollback", response_model=ModelPublic)
def rollback_model(
    session: SessionDep, settings: SettingsDep, write: TrainWrite
) -> ModelPublic:
    """Serve the model that served before the current one."""
    try:
        row = rollback(session, actor=write.actor)
    except ModelNotReady as exc:
        raise ApiError(409, "no_earlier_model", str(exc)) from exc
    _sync_alias(session, settings)
    return write.finish(ModelPublic.model_validate(row))


@router.get("/audits", response_model=AuditSummaryPublic, tags=["quality"])
def get_audits(session: SessionDep, caller: Reader) -> AuditSummaryPublic:
    """Return the precision estimate of automatic decisions from audits."""
    summary = audit_summary(session)
    return AuditSummaryPublic(
        precision=_rate(summary.precision),
        right=summary.right,
        wrong=summary.wrong,
        pending=summary.pending,
        by_week={week: _rate(rate) for week, rate in summary.by_week.items()},
        by_model={name: _rate(rate) for name, rate in summary.by_model.items()},
    )


@router.post("/audits/{task_id}", response_model=AuditVerdictPublic, tags=["quality"])
def post_audit_verdict(
    task_id: RecordId,
    body: AuditVerdictRequest,
    session: SessionDep,
    write: ReviewWrite,
) -> AuditVerdictPublic:
    """Record whether an audited automatic decision was right."""
    parts = [
        Part(a.target, a.amount, a.customer_id, a.order_id)
        for a in body.allocations or ()
    ]
    try:
        with rejections_audited(session, write.actor, None, "audit"):
            outcome = record_verdict(
                session,
                task_id,
                actor=write.actor,
                right=body.verdict == "right",
                note=body.note,
                parts=parts or None,
            )
    except NotAnAudit as exc:
        raise ApiError(422, "not_an_audit", str(exc)) from exc
    return write.finish(
        AuditVerdictPublic(
            task_id=outcome.task.id,
            line_id=outcome.line.id,
            verdict=body.verdict,
            line_status=outcome.line.status,
            label_id=outcome.label.id,
            requeued_task_id=outcome.requeued_task.id
            if outcome.requeued_task
            else None,
        )
    )


def _job_public(status) -> TrainingJobPublic:
    return TrainingJobPublic(
        job_id=status.job_id,
        state=status.state,
        actor=status.actor,
        started_at=status.started_at,
        finished_at=status.finished_at,
        detail=status.detail,
    )


def _rate(rate) -> RatePublic:
    low, high = rate.interval
    return RatePublic(
        hits=rate.hits,
        total=rate.total,
        value=rate.value if rate.total else None,
        low=low if rate.total else None,
        high=high if rate.total else None,
    )


def _sync_alias(session, settings) -> None:
    sync_serving_alias(
        session, settings.mlflow_tracking_uri, settings.mlflow_registry_name
    )
