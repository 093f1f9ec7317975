"""`cashmatch train`: a new model from labels, evaluated, logged, maybe promoted.

A training run has three steps. `prepare_training` reads the labelled lines
and the serving model in a short transaction. The fit and the evaluation
then run without a database session: they take minutes, and on SQLite an
open transaction holds the write lock that clerks need. `finish_training`
records the model and promotes it in a second short transaction. Between
the two, the run is logged to MLflow and the model registered there.

The new model serves only when it beats the serving model on the same
evaluation lines (the latest period of labels), or when forced.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from matcher.pipeline import MatchModel
from models.db import session_scope
from models.errors import CashmatchError, ModelNotReady
from models.tables import AuditEvent, Label, ModelVersion, utcnow
from service.cases import case_data, read_history
from service.settings import Settings
from training.case import replay_history
from training.dataset import background_job, parallel_workers
from training.evaluation import (
    DEFAULT_EVAL_SHARE,
    Evaluation,
    compare,
    evaluate_model,
    evaluation_start,
    required_labels,
    split_by_time,
    write_calibration,
)
from training.labels import LabelSet, collect_labels, labels_from_case
from training.learning import LearningRun, LearningSettings, run_learning
from training.registry import (
    RunRecord,
    load_model,
    log_to_mlflow,
    promote,
    record_model,
    save_model,
    serving_row,
    set_serving_alias,
    tag_run,
)
from training.train import TrainSettings

log = logging.getLogger("cashmatch.service")

EVAL_PREFIX = "eval_"
SERVING_PREFIX = "serving_eval_"


class TrainingSettings(BaseSettings):
    """Settings of training runs, read from CASHMATCH_* variables."""

    model_config = SettingsConfigDict(env_prefix="CASHMATCH_", extra="ignore")

    retrain_after_labels: int = Field(
        default=0,
        ge=0,
        description="Train in the background once this many new review "
        "decisions are kept as labels; 0 turns it off",
    )
    eval_share: float = Field(
        default=DEFAULT_EVAL_SHARE,
        gt=0.0,
        lt=1.0,
        description="Share of the latest labelled lines held out to evaluate on",
    )
    hard_negative_repeats: int = Field(
        default=2,
        ge=1,
        description="How many times a line a clerk corrected counts in training",
    )


@dataclass
class PreparedTraining:
    """The labels, settings and serving model a run reads before it fits."""

    labels: LabelSet
    source: str
    learning: LearningSettings
    serving: MatchModel | None
    serving_version: str | None
    eval_from: date | None = None


@dataclass
class TrainResult:
    """The outcome of a training run: the model, its figures, its promotion."""

    version: str
    source: str
    labels: int
    promoted: bool
    reason: str
    evaluated: int = 0
    metrics: dict = field(default_factory=dict)
    serving_version: str | None = None
    mlflow_run_id: str | None = None
    registry_version: str | None = None
    seconds: dict = field(default_factory=dict)

    def summary(self) -> str:
        """Return a few lines for the person who ran the training."""
        state = "serves now" if self.promoted else "not promoted"
        lines = [
            (
                f"model {self.version} from {self.labels} labelled lines of "
                f"{self.source}, the latest {self.evaluated} held out to evaluate "
                f"on; {state} ({self.reason})"
            ),
            f"latest period: {_figures(self.metrics, EVAL_PREFIX)}",
        ]
        if any(key.startswith(SERVING_PREFIX) for key in self.metrics):
            lines.append(
                f"serving model {self.serving_version}: "
                f"{_figures(self.metrics, SERVING_PREFIX)}"
            )
        lines.append(
            f"MLflow run {self.mlflow_run_id or '-'}, registry version "
            f"{self.registry_version or '-'}"
        )
        return "\n".join(lines)


def _figures(metrics: dict, prefix: str) -> str:
    def shown(name: str) -> str:
        value = metrics.get(prefix + name)
        if value is None or math.isnan(value):
            return "-"
        return f"{100 * value:.1f} %"

    return (
        f"top-1 {shown('top1_accuracy')}, allocation accuracy "
        f"{shown('allocation_accuracy')}, automation {shown('automation_rate')}, "
        f"precision of auto {shown('auto_precision')}"
    )


def learning_settings(
    settings: Settings, training: TrainingSettings
) -> LearningSettings:
    """Return the learning-run settings from the service settings."""
    return LearningSettings(
        eval_share=training.eval_share,
        hard_negative_repeats=training.hard_negative_repeats,
        train=TrainSettings(target_precision=settings.target_precision),
    )


def train(
    session: Session,
    settings: Settings,
    *,
    case: Path | None = None,
    promote_new: bool = True,
    force: bool = False,
    eval_from: date | None = None,
    actor: str = "train",
    training: TrainingSettings | None = None,
    learning: LearningSettings | None = None,
) -> TrainResult:
    """Train, evaluate, log to MLflow and record the model in one session.

    The session stays open while the model fits; `train_with_engine` is the
    variant for a database others write to at the same time.
    """
    prepared = prepare_training(
        session,
        settings,
        case=case,
        eval_from=eval_from,
        training=training,
        learning=learning,
    )
    run = learn(prepared)
    logged = log_run(prepared, run, settings, actor=actor)
    return finish_training(
        session,
        settings,
        prepared,
        run,
        logged,
        promote_new=promote_new,
        force=force,
        actor=actor,
    )


def train_with_engine(
    engine: Engine,
    settings: Settings,
    *,
    case: Path | None = None,
    promote_new: bool = True,
    force: bool = False,
    eval_from: date | None = None,
    actor: str = "train",
    training: TrainingSettings | None = None,
    learning: LearningSettings | None = None,
) -> TrainResult:
    """Train like `train`, holding a transaction only to read and to record.

    The result's `seconds` maps each step to its wall time.
    """
    clock = time.perf_counter()
    with session_scope(engine) as session:
        prepared = prepare_training(
            session,
            settings,
            case=case,
            eval_from=eval_from,
            training=training,
            learning=learning,
        )
    read = time.perf_counter() - clock
    run = learn(prepared)
    run.seconds = {"read_labels": read, **run.seconds}
    clock = time.perf_counter()
    logged = log_run(prepared, run, settings, actor=actor)
    run.seconds["mlflow"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with session_scope(engine) as session:
        result = finish_training(
            session,
            settings,
            prepared,
            run,
            logged,
            promote_new=promote_new,
            force=force,
            actor=actor,
        )
    result.seconds["record"] = time.perf_counter() - clock
    return result


def prepare_training(
    session: Session,
    settings: Settings,
    *,
    case: Path | None = None,
    eval_from: date | None = None,
    training: TrainingSettings | None = None,
    learning: LearningSettings | None = None,
) -> PreparedTraining:
    """Read the labelled lines (or a case history) and the serving model.

    `learning`, when given, replaces the settings derived from `settings`
    and `training`. Raises ModelNotReady, naming the number needed, when
    there are too few labelled lines to train on and evaluate on.
    """
    if learning is None:
        learning = learning_settings(settings, training or TrainingSettings())
    labels, source = _labels(session, settings, case)
    needed = required_labels(settings.min_labels, learning.eval_share)
    if len(labels.lines) < needed:
        raise ModelNotReady(
            f"training needs at least {needed} labelled lines and "
            f"{'the case history' if case else 'the database'} has "
            f"{len(labels.lines)}; review {needed - len(labels.lines)} more lines "
            "first, or train from a case folder with --case"
        )
    serving, serving_version = _serving_model(session)
    return PreparedTraining(
        labels=labels,
        source=source,
        learning=learning,
        serving=serving,
        serving_version=serving_version,
        eval_from=eval_from,
    )


def learn(prepared: PreparedTraining, *, workers: int | None = None) -> LearningRun:
    """Run `run_learning`, evaluating the serving model in a worker meanwhile.

    The serving model is evaluated from the same index as the new one, which
    the worker builds by replaying the training lines without labelling
    them. It fills the core that the single-process steps of the fit and
    the new model's evaluation leave idle. The result is the same as that
    of one process.
    `workers` is passed on to `parallel_workers`, and 1 evaluates here.
    """
    labels = prepared.labels
    if prepared.serving is None or parallel_workers(workers, len(labels.lines)) < 2:
        return run_learning(
            labels,
            prepared.learning,
            serving=prepared.serving,
            eval_from=prepared.eval_from,
        )
    with background_job(
        evaluate_serving,
        labels,
        prepared.learning,
        prepared.serving,
        prepared.eval_from,
    ) as serving_result:
        run = run_learning(labels, prepared.learning, eval_from=prepared.eval_from)
        evaluation, error, seconds = serving_result()
    beats, reason = compare(
        run.evaluation,
        evaluation,
        target_precision=prepared.learning.train.target_precision,
    )
    if error is not None:
        reason = f"{reason}; the serving model could not be evaluated: {error}"
    run.serving = evaluation
    run.serving_error = error
    run.beats_serving = beats
    run.reason = reason
    run.seconds["evaluate_serving"] = seconds
    return run


def evaluate_serving(
    labels: LabelSet,
    learning: LearningSettings,
    serving: MatchModel,
    eval_from: date | None,
) -> tuple[Evaluation | None, str | None, float]:
    """Evaluate a model on the latest labelled lines, as `run_learning` does.

    Returns the evaluation (None when the model no longer fits the
    features), the error that stopped it, and the wall seconds taken.
    """
    clock = time.perf_counter()
    split = split_by_time(
        labels.lines, eval_share=learning.eval_share, eval_from=eval_from
    )
    data = labels.case_data(split.train)
    index, _ = replay_history(data, label=False)
    start = evaluation_start(index, data.orders, split.eval_from)
    try:
        evaluation = evaluate_model(serving, start, split.test)
    except ModelNotReady as exc:
        log.warning("serving model %s cannot be evaluated: %s", serving.version, exc)
        return None, str(exc), time.perf_counter() - clock
    return evaluation, None, time.perf_counter() - clock


def _labels(session: Session, settings: Settings, case: Path | None):
    if case is None:
        return collect_labels(session), "labels"
    history = read_history(case, settings)
    if history is None:
        raise ModelNotReady(
            f"case folder {case} has no history/statement.* and "
            "history/allocations.csv to train from"
        )
    return labels_from_case(case_data(case, history)), f"case {case.name}"


def _serving_model(session: Session) -> tuple[MatchModel | None, str | None]:
    row = serving_row(session)
    if row is None:
        return None, None
    try:
        return load_model(Path(row.path)), row.version
    except ModelNotReady as exc:
        # A serving model that no longer loads cannot be compared with; the
        # new model then replaces it.
        log.warning("serving model %s cannot be loaded: %s", row.version, exc)
        return None, row.version


def log_run(
    prepared: PreparedTraining, run: LearningRun, settings: Settings, *, actor: str
) -> RunRecord:
    """Save the model file, log the run to MLflow and register the model."""
    model = run.model
    model.metrics.update(_prefixed(run.evaluation.summary(), EVAL_PREFIX))
    if run.serving is not None:
        model.metrics.update(_prefixed(run.serving.summary(), SERVING_PREFIX))
    path = save_model(model, settings.model_dir)
    params = {
        "source": prepared.source,
        "actor": actor,
        "target_precision": settings.target_precision,
        "serving_version": prepared.serving_version or "",
        **run.split.window(),
        **prepared.labels.counts.as_params(),
        **prepared.learning.as_params(),
    }
    with tempfile.TemporaryDirectory() as folder:
        artifacts = write_calibration(run.evaluation, Path(folder))
        artifacts.append(_evaluation_file(run, Path(folder)))
        return log_to_mlflow(
            model,
            path,
            tracking_uri=settings.mlflow_tracking_uri,
            registry_name=settings.mlflow_registry_name,
            params=params,
            extra_metrics={f"seconds_{k}": v for k, v in run.seconds.items()},
            artifacts=artifacts,
        )


def _evaluation_file(run: LearningRun, folder: Path) -> Path:
    import json

    path = folder / "evaluation.json"
    body = {
        "new": {"version": run.model.version, **run.evaluation.summary()},
        "serving": (
            {"version": run.serving.model_version, **run.serving.summary()}
            if run.serving
            else None
        ),
        "serving_error": run.serving_error,
        "beats_serving": run.beats_serving,
        "reason": run.reason,
        "window": run.split.window(),
    }
    path.write_text(json.dumps(body, indent=2, default=str))
    return path


def finish_training(
    session: Session,
    settings: Settings,
    prepared: PreparedTraining,
    run: LearningRun,
    logged: RunRecord,
    *,
    promote_new: bool,
    force: bool,
    actor: str,
) -> TrainResult:
    """Record the model, promote it when it beat the serving one, tag the run."""
    model = run.model
    record_model(
        session,
        model,
        Path(logged.path),
        source=prepared.source,
        mlflow_run_id=logged.run_id,
        registry_version=logged.registry_version,
    )
    promoted, reason = _promotion(session, prepared, run, promote_new, force)
    if promoted:
        promote(session, model.version, actor=actor)
        _move_alias(settings, logged.registry_version)
    session.add(
        AuditEvent(
            actor=actor,
            action="train",
            entity="model_version",
            entity_id=model.version,
            detail={
                "source": prepared.source,
                "labels": len(prepared.labels.lines),
                "promoted": promoted,
                "reason": reason,
                "mlflow_run_id": logged.run_id,
            },
        )
    )
    tag_run(
        settings.mlflow_tracking_uri,
        logged.run_id,
        {"promoted": str(promoted).lower(), "promotion_reason": reason[:500]},
    )
    log.info(
        "trained model %s on %d labelled lines from %s by %s: %s (%s)",
        model.version,
        len(prepared.labels.lines),
        prepared.source,
        actor,
        "promoted" if promoted else "not promoted",
        reason,
    )
    return TrainResult(
        version=model.version,
        source=prepared.source,
        labels=len(prepared.labels.lines),
        promoted=promoted,
        reason=reason,
        evaluated=len(run.split.test),
        metrics=dict(model.metrics),
        serving_version=prepared.serving_version,
        mlflow_run_id=logged.run_id,
        registry_version=logged.registry_version,
        seconds=dict(run.seconds),
    )


def _promotion(
    session: Session,
    prepared: PreparedTraining,
    run: LearningRun,
    promote_new: bool,
    force: bool,
) -> tuple[bool, str]:
    if force:
        return True, f"forced; {run.reason}"
    if not promote_new:
        return False, f"promotion not requested; {run.reason}"
    current = serving_row(session)
    current_version = current.version if current else None
    if current_version == run.model.version:
        return False, "the same model serves already"
    if current_version != prepared.serving_version:
        # Another run or a person promoted a model while this one trained, so
        # the comparison no longer holds.
        return False, (
            f"model {current_version} was promoted while this run trained "
            f"against {prepared.serving_version}; train again to compare"
        )
    return run.beats_serving, run.reason


def _move_alias(settings: Settings, registry_version: str | None) -> None:
    if not registry_version:
        return
    set_serving_alias(
        settings.mlflow_tracking_uri, settings.mlflow_registry_name, registry_version
    )


def _prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {prefix + key: value for key, value in values.items()}


# Training in the background ----------------------------------------------------

JOB_ENTITY = "training_job"
JOB_STARTED = "training_started"
JOB_FINISHED = "training_finished"
JOB_FAILED = "training_failed"
# A job whose start is older than this without an end is taken as crashed.
JOB_STALE_HOURS = 6


class TrainingBusy(CashmatchError):
    """A training run is going on already."""


@dataclass
class JobStatus:
    """The state of a background training job, as its audit events record it."""

    job_id: str
    state: str
    actor: str
    started_at: datetime | None
    finished_at: datetime | None
    detail: dict


class TrainingJobs:
    """Runs one training at a time in a background thread.

    Each job is recorded as audit events (started, then finished or failed),
    so its state is visible from every worker. A second job is refused while
    one runs in this process, or while another worker's job started less than
    JOB_STALE_HOURS ago and has not ended.
    """

    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(
        self,
        *,
        actor: str,
        trigger: str,
        promote_new: bool = True,
        force: bool = False,
    ) -> str:
        """Record and launch a job; return its id, or raise TrainingBusy."""
        with session_scope(self.engine) as session:
            job_id = self.reserve(session, actor=actor, trigger=trigger)
        self.launch(
            job_id, actor=actor, trigger=trigger, promote_new=promote_new, force=force
        )
        return job_id

    def reserve(self, session: Session, *, actor: str, trigger: str) -> str:
        """Record a new job in the caller's transaction and return its id.

        Raises TrainingBusy while another job runs. The caller launches the
        job after its transaction commits. An API request does so in a
        background task, because on SQLite a second transaction opened
        inside the request would wait for the request's own lock.
        """
        if self._thread is not None and self._thread.is_alive():
            raise TrainingBusy("a training job runs in this process; wait for it")
        running = running_job(session)
        if running is not None:
            raise TrainingBusy(
                f"training job {running.job_id} started by {running.actor} "
                f"at {running.started_at:%Y-%m-%d %H:%M} UTC is still running"
            )
        job_id = uuid.uuid4().hex[:16]
        _job_event(session, job_id, JOB_STARTED, actor, {"trigger": trigger})
        session.flush()
        return job_id

    def launch(
        self,
        job_id: str,
        *,
        actor: str,
        trigger: str,
        promote_new: bool = True,
        force: bool = False,
    ) -> None:
        """Run a reserved job in a background thread."""
        with self._lock:
            self._thread = threading.Thread(
                target=self._run,
                args=(job_id, actor, trigger, promote_new, force),
                name=f"cashmatch-training-{job_id}",
                daemon=True,
            )
            self._thread.start()
        log.info("training job %s started by %s (%s)", job_id, actor, trigger)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running job of this process; True when none runs."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self, job_id, actor, trigger, promote_new, force) -> None:
        try:
            result = train_with_engine(
                self.engine,
                self.settings,
                promote_new=promote_new,
                force=force,
                actor=actor,
            )
        except Exception as exc:  # a background job records every failure
            log.exception("training job %s failed", job_id)
            self._record(job_id, JOB_FAILED, actor, {"error": str(exc)[:1000]})
            return
        self._record(
            job_id,
            JOB_FINISHED,
            actor,
            {
                "trigger": trigger,
                "version": result.version,
                "promoted": result.promoted,
                "reason": result.reason,
                "labels": result.labels,
                "mlflow_run_id": result.mlflow_run_id,
            },
        )

    def _record(self, job_id: str, action: str, actor: str, detail: dict) -> None:
        try:
            with session_scope(self.engine) as session:
                _job_event(session, job_id, action, actor, detail)
        except SQLAlchemyError as exc:
            log.error("training job %s: its end could not be recorded: %s", job_id, exc)


def _job_event(session: Session, job_id: str, action: str, actor: str, detail: dict):
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            entity=JOB_ENTITY,
            entity_id=job_id,
            detail=detail,
        )
    )


def job_status(session: Session, job_id: str) -> JobStatus | None:
    """Return a training job's state from its audit events, or None."""
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.entity == JOB_ENTITY, AuditEvent.entity_id == job_id)
        .order_by(AuditEvent.id)
    ).all()
    if not events:
        return None
    first, last = events[0], events[-1]
    state = {JOB_STARTED: "running", JOB_FINISHED: "finished", JOB_FAILED: "failed"}
    return JobStatus(
        job_id=job_id,
        state=state.get(last.action, last.action),
        actor=first.actor,
        started_at=_aware(first.at),
        finished_at=_aware(last.at) if last is not first else None,
        detail={**(first.detail or {}), **(last.detail or {})},
    )


def running_job(session: Session, *, now: datetime | None = None) -> JobStatus | None:
    """Return a job that started recently and has not ended, if any."""
    now = now or utcnow()
    since = now - timedelta(hours=JOB_STALE_HOURS)
    started = session.exec(
        select(AuditEvent.entity_id)
        .where(
            AuditEvent.entity == JOB_ENTITY,
            AuditEvent.action == JOB_STARTED,
            AuditEvent.at >= since,
        )
        .order_by(AuditEvent.id.desc())
    ).all()
    for job_id in started:
        status = job_status(session, job_id)
        if status is not None and status.state == "running":
            return status
    return None


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes for values stored in UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# Retraining after new labels ---------------------------------------------------

_NEW_LABELS = "cashmatch.new_labels"


def new_labels_since(session: Session, since: datetime | None) -> int:
    """Return how many review decisions were kept as labels after `since`."""
    query = select(func.count(Label.id)).where(Label.action != "undo")
    if since is not None:
        query = query.where(Label.created_at > since)
    return int(session.exec(query).one())


def last_training_start(session: Session) -> datetime | None:
    """Return when the latest training began: a job, or the newest trained model."""
    job = session.exec(
        select(func.max(AuditEvent.at)).where(
            AuditEvent.entity == JOB_ENTITY, AuditEvent.action == JOB_STARTED
        )
    ).one()
    model = session.exec(
        select(func.max(ModelVersion.created_at)).where(
            ModelVersion.source != "cold_start"
        )
    ).one()
    found = [_aware(moment) for moment in (job, model) if moment is not None]
    return max(found) if found else None


class RetrainTrigger:
    """Starts a background training once enough new labels were committed.

    It listens to commits of sessions on its engine. A commit that kept a new
    label wakes a short-lived thread, which counts the labels kept since the
    last training began and starts a job when they reach `threshold`. The
    clerk's request only sets a flag, so it is never held up by the count or
    by training.
    """

    def __init__(self, jobs: TrainingJobs, threshold: int):
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, got {threshold}")
        self.jobs = jobs
        self.threshold = threshold
        self._checking = threading.Lock()
        self._again = threading.Event()
        self.last_check: threading.Thread | None = None

    def install(self) -> None:
        """Start listening to sessions on the jobs' engine."""
        event.listen(OrmSession, "after_flush", self._after_flush)
        event.listen(OrmSession, "after_commit", self._after_commit)
        event.listen(OrmSession, "after_rollback", self._after_rollback)

    def uninstall(self) -> None:
        """Stop listening."""
        for name, handler in (
            ("after_flush", self._after_flush),
            ("after_commit", self._after_commit),
            ("after_rollback", self._after_rollback),
        ):
            if event.contains(OrmSession, name, handler):
                event.remove(OrmSession, name, handler)

    def _after_flush(self, session, _context) -> None:
        if any(isinstance(row, Label) for row in session.new):
            session.info[_NEW_LABELS] = True

    def _after_rollback(self, session) -> None:
        session.info.pop(_NEW_LABELS, None)

    def _after_commit(self, session) -> None:
        if not session.info.pop(_NEW_LABELS, False):
            return
        if session.bind is not self.jobs.engine:
            return
        self._again.set()
        if self._checking.locked():
            return
        self.last_check = threading.Thread(
            target=self._check, name="cashmatch-retrain-check", daemon=True
        )
        self.last_check.start()

    def _check(self) -> None:
        if not self._checking.acquire(blocking=False):
            return
        try:
            while self._again.is_set():
                self._again.clear()
                self.check_now()
        finally:
            self._checking.release()

    def check_now(self) -> str | None:
        """Count new labels and start a job when enough; return its id."""
        try:
            with session_scope(self.jobs.engine) as session:
                count = new_labels_since(session, last_training_start(session))
        except SQLAlchemyError as exc:
            log.warning("new labels could not be counted: %s", exc)
            return None
        if count < self.threshold:
            log.debug("%d new labels of %d needed to retrain", count, self.threshold)
            return None
        try:
            return self.jobs.start(
                actor="retrain-trigger", trigger=f"{count} new labels"
            )
        except TrainingBusy as exc:
            log.info("retraining after %d new labels waits: %s", count, exc)
            return None
