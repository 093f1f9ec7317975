"""The figures of the dashboard and of /metrics, computed from the database.

The database is the one shared state of every worker, so counting there
gives the same numbers whichever worker Prometheus or a browser reaches.
Lines count by their booking week (the Monday it starts on); only money in
counts, and voided lines never do.

- automation rate: the share of matched lines decided `auto`;
- estimated precision of automatic decisions: the share of audited automatic
  decisions a clerk found right, with its Wilson 95 % interval;
- suggestions accepted as they were: the share of review decisions that took
  the matcher's first suggestion unchanged;
- queue: open review tasks, and how long they have waited;
- unmatched money: money in on lines not allocated yet.

An alert fires when automation or the precision estimate falls below its
level, set by a CASHMATCH_ALERT_* variable. An active alert shows as a
metric and is logged as a WARNING when it fires, then at most once an hour.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func, type_coerce
from sqlmodel import Session, select

from matcher.pipeline import AUTO, REVIEW, UNMATCHED
from models.money import ZERO, Money
from models.tables import AuditEvent, Label, ReviewTask, StatementLine, utcnow
from service.auditing import AuditSummary, audit_summary, week_of
from training.metrics import Rate
from training.registry import serving_row

log = logging.getLogger("cashmatch.service")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_STATUSES = ("new", "review", "unmatched")
DECISIONS = (AUTO, REVIEW, UNMATCHED)
REVIEW_ACTIONS = ("accept", "choose", "split", "balance", "not_customer", "refund")
PROMETHEUS_WEEKS = 12
ALERT_LOG_SECONDS = 3600.0


class AlertLevels(BaseSettings):
    """Levels below which an alert fires, from CASHMATCH_ALERT_* variables.

    A level of 0 turns its alert off. An alert needs at least `min_lines`
    matched lines (automation) or audit verdicts (precision) in the window,
    so a quiet day does not fire it.
    """

    model_config = SettingsConfigDict(env_prefix="CASHMATCH_ALERT_", extra="ignore")

    min_automation: float = Field(default=0.5, ge=0.0, le=1.0)
    min_precision: float = Field(default=0.98, ge=0.0, le=1.0)
    window_days: int = Field(default=7, ge=1)
    precision_window_days: int = Field(default=30, ge=1)
    min_lines: int = Field(default=20, ge=1)


@dataclass
class QueueFigures:
    """Open review tasks and how long they have waited, in hours."""

    open: int = 0
    oldest_hours: float = math.nan
    mean_hours: float = math.nan


@dataclass(frozen=True)
class Promotion:
    """One model version becoming the serving one."""

    at: datetime
    version: str
    actor: str
    previous: str | None


@dataclass(frozen=True)
class Alert:
    """An alert, its measured value, its level and whether it fires."""

    name: str
    value: float
    level: float
    count: int
    active: bool


@dataclass
class Figures:
    """Every figure of the dashboard; dicts are keyed by account, channel or week."""

    automation: Rate
    automation_by: dict[str, dict[str, Rate]]
    decided: dict[str, int]
    audits: AuditSummary
    accepted: Rate
    accepted_by: dict[str, dict[str, Rate]]
    queue: QueueFigures
    queue_by: dict[str, dict[str, QueueFigures]]
    unmatched_by: dict[str, dict[tuple[str, str], Decimal]]
    lines_by_model_week: dict[tuple[str, str], int]
    promotions: list[Promotion]
    serving_version: str | None
    alerts: list[Alert] = field(default_factory=list)


def dashboard_figures(
    session: Session,
    *,
    levels: AlertLevels | None = None,
    now: datetime | None = None,
) -> Figures:
    """Compute every dashboard figure and check the alerts."""
    levels = levels or AlertLevels()
    now = now or utcnow()
    automation, automation_by, decided = _automation(session)
    accepted, accepted_by = _accepted(session)
    queue, queue_by = _queue(session, now)
    row = serving_row(session)
    figures = Figures(
        automation=automation,
        automation_by=automation_by,
        decided=decided,
        audits=audit_summary(session),
        accepted=accepted,
        accepted_by=accepted_by,
        queue=queue,
        queue_by=queue_by,
        unmatched_by=_unmatched(session),
        lines_by_model_week=_lines_by_model(session),
        promotions=promotions(session),
        serving_version=row.version if row else None,
    )
    figures.alerts = check_alerts(session, levels, now)
    return figures


# Automation ----------------------------------------------------------------------


def _matched_lines():
    return (
        StatementLine.amount > 0,
        StatementLine.decision.in_(DECISIONS),
        StatementLine.status != "voided",
    )


def _automation(session: Session):
    query = select(
        StatementLine.account,
        StatementLine.channel,
        StatementLine.booking_date,
        StatementLine.decision,
        func.count(StatementLine.id),
    ).where(*_matched_lines())
    query = query.group_by(
        StatementLine.account,
        StatementLine.channel,
        StatementLine.booking_date,
        StatementLine.decision,
    )
    overall = [0, 0]
    by: dict[str, dict[str, list[int]]] = {
        "account": defaultdict(lambda: [0, 0]),
        "channel": defaultdict(lambda: [0, 0]),
        "week": defaultdict(lambda: [0, 0]),
    }
    decided: Counter = Counter()
    for account, channel, day, decision, count in session.exec(query).all():
        decided[decision] += count
        auto = count if decision == AUTO else 0
        for counter in (
            overall,
            by["account"][account],
            by["channel"][channel],
            by["week"][week_of(day)],
        ):
            counter[0] += auto
            counter[1] += count
    return Rate(*overall), _rates(by), dict(decided)


def _rates(by: dict[str, dict[str, list[int]]]) -> dict[str, dict[str, Rate]]:
    return {
        dimension: {key: Rate(*counts) for key, counts in sorted(groups.items())}
        for dimension, groups in by.items()
    }


# Suggestions accepted --------------------------------------------------------------


def _accepted(session: Session):
    """Share of review decisions that took the first suggestion unchanged."""
    overall = [0, 0]
    by: dict[str, dict[str, list[int]]] = {
        "account": defaultdict(lambda: [0, 0]),
        "channel": defaultdict(lambda: [0, 0]),
        "week": defaultdict(lambda: [0, 0]),
    }
    for account, channel, day, unchanged, count in _decisions(session):
        for counter in (
            overall,
            by["account"][account],
            by["channel"][channel],
            by["week"][week_of(day)],
        ):
            counter[0] += count if unchanged else 0
            counter[1] += count
    return Rate(*overall), _rates(by)


def _decisions(session: Session):
    """Yield (account, channel, day, took the first suggestion, count) groups."""
    line = (StatementLine.account, StatementLine.channel, StatementLine.booking_date)
    counted = (
        select(*line, Label.action, func.count(Label.id))
        .join(StatementLine, StatementLine.id == Label.line_id)
        .where(Label.action.in_(REVIEW_ACTIONS), Label.action != "choose")
        .group_by(*line, Label.action)
    )
    for account, channel, day, action, count in session.exec(counted).all():
        yield account, channel, day, action == "accept", count
    # Only a choice records which candidate it took, in a JSON column.
    chosen = (
        select(*line, Label.chosen)
        .join(StatementLine, StatementLine.id == Label.line_id)
        .where(Label.action == "choose")
    )
    for account, channel, day, choice in session.exec(chosen).all():
        yield account, channel, day, (choice or {}).get("candidate") == 0, 1


# The queue -------------------------------------------------------------------------


def _queue(session: Session, now: datetime):
    query = (
        select(StatementLine.account, StatementLine.channel, ReviewTask.created_at)
        .join(StatementLine, StatementLine.id == ReviewTask.line_id)
        .where(ReviewTask.status == "open")
    )
    ages: list[float] = []
    by: dict[str, dict[str, list[float]]] = {
        "account": defaultdict(list),
        "channel": defaultdict(list),
    }
    for account, channel, created_at in session.exec(query).all():
        hours = (now - _aware(created_at)).total_seconds() / 3600.0
        ages.append(hours)
        by["account"][account].append(hours)
        by["channel"][channel].append(hours)
    return _queue_figures(ages), {
        dimension: {key: _queue_figures(found) for key, found in sorted(groups.items())}
        for dimension, groups in by.items()
    }


def _queue_figures(ages: list[float]) -> QueueFigures:
    if not ages:
        return QueueFigures()
    return QueueFigures(len(ages), max(ages), sum(ages) / len(ages))


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for values stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Unmatched money -------------------------------------------------------------------


def _unmatched(session: Session) -> dict[str, dict[tuple[str, str], Decimal]]:
    # The sum is read through the Money type, so cents come back as Decimal.
    total = type_coerce(func.sum(StatementLine.amount), Money())
    query = (
        select(
            StatementLine.account,
            StatementLine.channel,
            StatementLine.currency,
            StatementLine.booking_date,
            total,
        )
        .where(StatementLine.status.in_(UNMATCHED_STATUSES), StatementLine.amount > 0)
        .group_by(
            StatementLine.account,
            StatementLine.channel,
            StatementLine.currency,
            StatementLine.booking_date,
        )
    )
    by: dict[str, dict[tuple[str, str], Decimal]] = {
        "account": defaultdict(lambda: ZERO),
        "channel": defaultdict(lambda: ZERO),
        "week": defaultdict(lambda: ZERO),
    }
    for account, channel, currency, day, amount in session.exec(query).all():
        by["account"][(account, currency)] += amount
        by["channel"][(channel, currency)] += amount
        by["week"][(week_of(day), currency)] += amount
    return {dimension: dict(sorted(groups.items())) for dimension, groups in by.items()}


# Models ----------------------------------------------------------------------------


def _lines_by_model(session: Session) -> dict[tuple[str, str], int]:
    query = (
        select(
            StatementLine.booking_date,
            StatementLine.model_version,
            func.count(StatementLine.id),
        )
        .where(*_matched_lines())
        .group_by(StatementLine.booking_date, StatementLine.model_version)
    )
    counts: Counter = Counter()
    for day, version, count in session.exec(query).all():
        counts[(week_of(day), version or "unknown")] += count
    return dict(sorted(counts.items()))


def promotions(session: Session) -> list[Promotion]:
    """Return every model promotion, oldest first."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.action == "promote", AuditEvent.entity == "model_version")
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    return [
        Promotion(
            at=_aware(event.at),
            version=event.entity_id,
            actor=event.actor,
            previous=(event.detail or {}).get("previous"),
        )
        for event in session.exec(query).all()
    ]


# Alerts ----------------------------------------------------------------------------


def check_alerts(session: Session, levels: AlertLevels, now: datetime) -> list[Alert]:
    """Return the automation and precision alerts, logging the active ones."""
    alerts = [
        _automation_alert(session, levels, now),
        _precision_alert(session, levels, now),
    ]
    for alert in alerts:
        _log_alert(alert, levels)
    return alerts


def _automation_alert(session: Session, levels: AlertLevels, now: datetime) -> Alert:
    since = now - timedelta(days=levels.window_days)
    query = (
        select(StatementLine.decision, func.count(StatementLine.id))
        .where(*_matched_lines(), StatementLine.created_at >= since)
        .group_by(StatementLine.decision)
    )
    counts = dict(session.exec(query).all())
    rate = Rate(counts.get(AUTO, 0), sum(counts.values()))
    return _alert("automation", rate, levels.min_automation, levels.min_lines)


def _precision_alert(session: Session, levels: AlertLevels, now: datetime) -> Alert:
    since = now - timedelta(days=levels.precision_window_days)
    rate = audit_summary(session, since=since).precision
    return _alert("precision", rate, levels.min_precision, levels.min_lines)


def _alert(name: str, rate: Rate, level: float, min_count: int) -> Alert:
    active = level > 0 and rate.total >= min_count and rate.value < level
    return Alert(name, rate.value, level, rate.total, active)


_alert_lock = threading.Lock()
_alert_logged: dict[str, float] = {}


def _log_alert(alert: Alert, levels: AlertLevels) -> None:
    with _alert_lock:
        if not alert.active:
            _alert_logged.pop(alert.name, None)
            return
        last = _alert_logged.get(alert.name)
        moment = time.monotonic()
        if last is not None and moment - last < ALERT_LOG_SECONDS:
            return
        _alert_logged[alert.name] = moment
    window = (
        levels.window_days
        if alert.name == "automation"
        else levels.precision_window_days
    )
    log.warning(
        "alert: %s %.3f over %d %s in the last %d days is below the level %.3f",
        alert.name,
        alert.value,
        alert.count,
        "lines" if alert.name == "automation" else "audited decisions",
        window,
        alert.level,
    )


# The Prometheus text format ----------------------------------------------------------


def metrics_text(session: Session, *, levels: AlertLevels | None = None) -> str:
    """Return the dashboard figures in the Prometheus text exposition format."""
    figures = dashboard_figures(session, levels=levels)
    blocks = [
        _gauge(
            "cashmatch_statement_lines",
            "Statement lines by status and matcher decision.",
            _lines_by_status(session),
        ),
        *_automation_blocks(figures),
        *_precision_blocks(figures.audits),
        *_accepted_blocks(figures),
        *_queue_blocks(figures),
        *_unmatched_blocks(figures),
        *_model_blocks(figures),
        *_alert_blocks(figures.alerts),
    ]
    return "\n".join(blocks) + "\n"


def _lines_by_status(session: Session) -> list[tuple[dict, float]]:
    query = select(
        StatementLine.status, StatementLine.decision, func.count(StatementLine.id)
    ).group_by(StatementLine.status, StatementLine.decision)
    return [
        ({"status": status, "decision": decision or "none"}, count)
        for status, decision, count in session.exec(query).all()
    ]


def _automation_blocks(figures: Figures) -> list[str]:
    return [
        _gauge(
            "cashmatch_automation_rate",
            "Share of matched money-in lines decided automatically.",
            [({}, figures.automation.value)],
        ),
        *_by_blocks(
            "cashmatch_automation_rate",
            "Share of matched money-in lines decided automatically",
            figures.automation_by,
        ),
        _gauge(
            "cashmatch_matched_lines",
            "Matched money-in lines by matcher decision.",
            [({"decision": d}, n) for d, n in sorted(figures.decided.items())],
        ),
    ]


def _by_blocks(name: str, help_text: str, groups: dict[str, dict[str, Rate]]):
    blocks = []
    for dimension, rates in groups.items():
        items = list(rates.items())
        if dimension == "week":
            items = items[-PROMETHEUS_WEEKS:]
        blocks.append(
            _gauge(
                f"{name}_by_{dimension}",
                f"{help_text}, by {dimension}.",
                [({dimension: key}, rate.value) for key, rate in items],
            )
        )
    return blocks


def _precision_blocks(audits: AuditSummary) -> list[str]:
    rate = audits.precision
    low, high = rate.interval
    return [
        _gauge(
            "cashmatch_auto_precision_estimate",
            "Share of audited automatic decisions found right.",
            [({}, rate.value)],
        ),
        _gauge(
            "cashmatch_auto_precision_low",
            "Lower end of the Wilson 95 % interval of the precision estimate.",
            [({}, low)],
        ),
        _gauge(
            "cashmatch_auto_precision_high",
            "Upper end of the Wilson 95 % interval of the precision estimate.",
            [({}, high)],
        ),
        _gauge(
            "cashmatch_audit_verdicts",
            "Audited automatic decisions by verdict.",
            [
                ({"verdict": "right"}, audits.right),
                ({"verdict": "wrong"}, audits.wrong),
                ({"verdict": "pending"}, audits.pending),
            ],
        ),
    ]


def _accepted_blocks(figures: Figures) -> list[str]:
    return [
        _gauge(
            "cashmatch_suggestions_accepted_share",
            "Share of review decisions that took the first suggestion unchanged.",
            [({}, figures.accepted.value)],
        ),
        _gauge(
            "cashmatch_review_decisions",
            "Review decisions kept as labels.",
            [({}, figures.accepted.total)],
        ),
        *_by_blocks(
            "cashmatch_suggestions_accepted_share",
            "Share of review decisions that took the first suggestion unchanged",
            figures.accepted_by,
        ),
    ]


def _queue_blocks(figures: Figures) -> list[str]:
    queue = figures.queue
    blocks = [
        _gauge(
            "cashmatch_review_tasks_open",
            "Review tasks waiting for a clerk.",
            [({}, queue.open)],
        ),
        _gauge(
            "cashmatch_review_queue_oldest_seconds",
            "How long the oldest open review task has waited.",
            [({}, queue.oldest_hours * 3600.0)],
        ),
        _gauge(
            "cashmatch_review_queue_mean_age_seconds",
            "How long open review tasks have waited, on average.",
            [({}, queue.mean_hours * 3600.0)],
        ),
    ]
    for dimension, groups in figures.queue_by.items():
        blocks.append(
            _gauge(
                f"cashmatch_review_tasks_open_by_{dimension}",
                f"Review tasks waiting for a clerk, by {dimension}.",
                [({dimension: key}, found.open) for key, found in groups.items()],
            )
        )
    return blocks


def _unmatched_blocks(figures: Figures) -> list[str]:
    blocks = [
        _gauge(
            "cashmatch_unmatched_amount",
            "Money in on lines not yet allocated, by account and currency.",
            [
                ({"account": account, "currency": currency}, total)
                for (account, currency), total in figures.unmatched_by[
                    "account"
                ].items()
            ],
        )
    ]
    for dimension in ("channel", "week"):
        items = list(figures.unmatched_by[dimension].items())
        if dimension == "week":
            weeks = sorted({week for week, _ in figures.unmatched_by["week"]})
            kept = set(weeks[-PROMETHEUS_WEEKS:])
            items = [item for item in items if item[0][0] in kept]
        blocks.append(
            _gauge(
                f"cashmatch_unmatched_amount_by_{dimension}",
                f"Money in on lines not yet allocated, by {dimension} and currency.",
                [
                    ({dimension: key, "currency": currency}, total)
                    for (key, currency), total in items
                ],
            )
        )
    return blocks


def _model_blocks(figures: Figures) -> list[str]:
    weeks = sorted({week for week, _ in figures.lines_by_model_week})
    kept = set(weeks[-PROMETHEUS_WEEKS:])
    latest: dict[str, datetime] = {}
    for promotion in figures.promotions:
        latest[promotion.version] = promotion.at
    return [
        _gauge(
            "cashmatch_model_info",
            "The serving model version; the value is always 1.",
            [({"version": figures.serving_version}, 1)]
            if figures.serving_version
            else [],
        ),
        _gauge(
            "cashmatch_lines_by_model",
            "Matched money-in lines by booking week and the model that matched them.",
            [
                ({"week": week, "version": version}, count)
                for (week, version), count in figures.lines_by_model_week.items()
                if week in kept
            ],
        ),
        _gauge(
            "cashmatch_model_promoted_timestamp_seconds",
            "When each model version last became the serving one.",
            [({"version": v}, at.timestamp()) for v, at in sorted(latest.items())],
        ),
    ]


def _alert_blocks(alerts: list[Alert]) -> list[str]:
    return [
        _gauge(
            "cashmatch_alert",
            "1 when the figure is below its alert level, else 0.",
            [({"alert": alert.name}, int(alert.active)) for alert in alerts],
        ),
        _gauge(
            "cashmatch_alert_value",
            "The figure each alert watches, over its window.",
            [({"alert": alert.name}, alert.value) for alert in alerts],
        ),
        _gauge(
            "cashmatch_alert_level",
            "The level below which each alert fires; 0 is off.",
            [({"alert": alert.name}, alert.level) for alert in alerts],
        ),
    ]


def _gauge(name: str, help_text: str, samples: Iterable[tuple[dict, object]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        lines.append(f"{name}{_labels(labels)} {_value(value)}")
    return "\n".join(lines)


def _value(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return repr(value)
    return str(value)


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
