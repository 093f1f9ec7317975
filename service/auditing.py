"""Audit sampling: a share of automatic decisions goes to a clerk as a check.

Labels from review tasks come only from lines the matcher was unsure of, so
they cannot tell how often an automatic decision is wrong. With
CASHMATCH_AUDIT_SHARE above 0, that share of automatic decisions is booked
as usual and also gets a review task marked as an audit. The clerks'
verdicts, right or wrong, are a sample of the automatic decisions. The share
found right estimates their precision, with a Wilson 95 % interval.

Whether a line is audited depends only on a hash of its account and
de-duplication key, so every worker and every re-run choose the same lines.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, update
from sqlmodel import Session, select

from matcher.pipeline import AUTO
from models.errors import CashmatchError
from models.tables import (
    Allocation,
    AuditEvent,
    Label,
    ReviewTask,
    StatementLine,
    utcnow,
)
from service.booking import InvalidAllocation, Part
from training.metrics import Rate

if TYPE_CHECKING:
    from service.matching import LineOutcome

log = logging.getLogger("cashmatch.service")

# NOTE: an audit task is marked by its reason alone, and the review queue's
# accept action fails on it because the line is booked already; verdicts go
# through `record_verdict` (the dashboard tab or POST /v1/audits/{task_id}).
AUDIT_PREFIX = "audit:"
AUDIT_REASON = f"{AUDIT_PREFIX} automatic decision sampled for a quality check"
RIGHT = "audit_right"
WRONG = "audit_wrong"
# An audit task ranks like an ordinary task of the same amount whose
# confidence is near 1, behind the lines the matcher was unsure of.
AUDIT_PRIORITY_FACTOR = 0.05


class NotAnAudit(CashmatchError):
    """A review task that is not an audit of an automatic decision."""


def audit_draw(line: StatementLine) -> float:
    """Return the line's fixed draw in [0, 1) that decides whether it is audited."""
    key = f"{line.account}\x00{line.dedupe_key}".encode()
    digest = hashlib.sha256(key).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_sampled(line: StatementLine, share: float) -> bool:
    """Tell whether a line's automatic decision is audited at `share`."""
    return share > 0.0 and audit_draw(line) < share


def is_audit_task(task: ReviewTask) -> bool:
    """Tell whether a review task is an audit of an automatic decision."""
    return (task.reason or "").startswith(AUDIT_PREFIX)


def sample_for_audit(
    session: Session, outcomes: Iterable[LineOutcome], share: float
) -> list[ReviewTask]:
    """Open an audit task for the sampled automatic decisions just booked."""
    if share <= 0.0:
        return []
    tasks = []
    for outcome in outcomes:
        line = outcome.line
        if outcome.decision != AUTO or line.status != "allocated":
            continue
        if not is_sampled(line, share):
            continue
        task = ReviewTask(
            line_id=line.id,
            reason=AUDIT_REASON,
            priority=float(line.amount) * AUDIT_PRIORITY_FACTOR,
        )
        session.add(task)
        tasks.append(task)
    if tasks:
        session.flush()
        log.info(
            "sampled %d automatic decisions for audit (share %.3f)",
            len(tasks),
            share,
        )
    return tasks


# Verdicts ----------------------------------------------------------------------


@dataclass
class AuditOutcome:
    """A recorded verdict and what it changed on the line."""

    task: ReviewTask
    line: StatementLine
    right: bool
    label: Label
    requeued_task: ReviewTask | None = None


def record_verdict(
    session: Session,
    task_id: int,
    *,
    actor: str,
    right: bool,
    note: str = "",
    parts: list[Part] | None = None,
    now: datetime | None = None,
) -> AuditOutcome:
    """Record whether an audited automatic decision was right.

    A wrong decision is undone: with `parts` the line is booked to them at
    once, otherwise it goes back to the queue as an ordinary review task.
    Raises NotAnAudit for other tasks and ReviewConflict when the task is
    decided already or claimed by another clerk.
    """
    # Imported here: service.review imports service.matching, which imports
    # this module for the sampling hook.
    from service import review

    task = review.get_task(session, task_id)
    if not is_audit_task(task):
        raise NotAnAudit(
            f"review task {task_id} is not an audit; decide it in the review queue"
        )
    _close(session, task, actor, now or utcnow())
    line = review.get_line(session, task.line_id)
    booked = _booked_view(session, line)
    if right and line.status != "allocated":
        raise InvalidAllocation(
            f"line {line.line_ref} is {line.status}; its automatic decision was "
            "undone already, so it cannot be confirmed as right"
        )

    requeued = None
    if not right and line.status == "allocated":
        requeued = _undo(session, line, actor, note, parts)
    label = _verdict_label(session, line, task, right, booked, note, actor)
    session.add(
        AuditEvent(
            actor=actor,
            action=RIGHT if right else WRONG,
            entity="review_task",
            entity_id=str(task.id),
            detail={
                "line_id": line.id,
                "line_ref": line.line_ref,
                "model_version": line.model_version,
                "note": note[:500],
            },
        )
    )
    log.info(
        "audit of line %s (task %s): %s by %s",
        line.line_ref,
        task.id,
        "right" if right else "wrong",
        actor,
    )
    return AuditOutcome(task, line, right, label, requeued)


def _close(session: Session, task: ReviewTask, actor: str, now: datetime) -> None:
    from service.review import ReviewConflict

    result = session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.id == task.id,
            ReviewTask.status == "open",
            or_(
                ReviewTask.claimed_by.is_(None),
                ReviewTask.claimed_by == actor,
                ReviewTask.claim_expires_at < now,
            ),
        )
        .values(
            status="decided",
            decided_by=actor,
            decided_at=now,
            claimed_by=actor,
            version=ReviewTask.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(task)
    if result.rowcount != 1:
        holder = task.decided_by if task.status != "open" else task.claimed_by
        raise ReviewConflict(
            f"audit task {task.id} is {task.status} and held by {holder}; "
            "pick another task"
        )


def _undo(session, line, actor, note, parts) -> ReviewTask | None:
    from service import review

    reason = f"audit: automatic decision wrong{': ' + note if note else ''}"
    if parts:
        review.change_line(
            session, line.id, parts, actor=actor, reason=reason, expected_version=None
        )
        return None
    undone = review.reverse_line(
        session, line.id, actor=actor, reason=reason, expected_version=None
    )
    return undone.task


def _booked_view(session: Session, line: StatementLine) -> list[dict]:
    rows = session.exec(
        select(Allocation).where(
            Allocation.line_id == line.id, Allocation.status == "confirmed"
        )
    ).all()
    return [
        {
            "target": row.target,
            "customer_id": row.customer_id,
            "order_id": row.order_id,
            "amount": str(row.amount),
        }
        for row in rows
    ]


def _verdict_label(session, line, task, right, booked, note, actor) -> Label:
    label = Label(
        line_id=line.id,
        review_task_id=task.id,
        action=RIGHT if right else WRONG,
        chosen={"allocations": booked, "note": note},
        candidates=list((line.suggestion or {}).get("candidates", [])),
        model_version=line.model_version,
        actor=actor,
    )
    session.add(label)
    session.flush()
    return label


# The precision estimate -------------------------------------------------------


@dataclass
class AuditSummary:
    """Audited automatic decisions: found right, found wrong, still open.

    `precision` is right over right plus wrong, with its Wilson interval.
    A line whose automatic decision a clerk undid before the audit verdict
    counts as wrong; a voided line counts as neither.
    """

    right: int = 0
    wrong: int = 0
    pending: int = 0
    by_week: dict[str, Rate] = field(default_factory=dict)
    by_model: dict[str, Rate] = field(default_factory=dict)

    @property
    def precision(self) -> Rate:
        return Rate(self.right, self.right + self.wrong)


def audit_summary(session: Session, *, since: datetime | None = None) -> AuditSummary:
    """Count audit verdicts, overall, per week sampled and per model version."""
    query = (
        select(ReviewTask, StatementLine)
        .join(StatementLine, StatementLine.id == ReviewTask.line_id)
        .where(ReviewTask.reason.startswith(AUDIT_PREFIX))
    )
    if since is not None:
        query = query.where(ReviewTask.created_at >= since)
    pairs = session.exec(query).all()
    verdicts = _verdicts(session, {task.id for task, _ in pairs})
    undone = _last_undo(session, {line.id for _, line in pairs})

    summary = AuditSummary()
    weeks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    models: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for task, line in pairs:
        right = _outcome(task, line, verdicts.get(task.id), undone.get(line.id))
        if right is None:
            summary.pending += task.status == "open" and line.status != "voided"
            continue
        summary.right += right
        summary.wrong += not right
        for counter in (
            weeks[week_of(task.created_at)],
            models[line.model_version or "unknown"],
        ):
            counter[0] += right
            counter[1] += 1
    summary.by_week = {week: Rate(*counts) for week, counts in sorted(weeks.items())}
    summary.by_model = {name: Rate(*counts) for name, counts in sorted(models.items())}
    return summary


def _verdicts(session: Session, task_ids: set[int]) -> dict[int, bool]:
    if not task_ids:
        return {}
    labels = session.exec(
        select(Label.review_task_id, Label.action).where(
            Label.action.in_((RIGHT, WRONG))
        )
    ).all()
    return {
        task_id: action == RIGHT for task_id, action in labels if task_id in task_ids
    }


def _last_undo(session: Session, line_ids: set[int]) -> dict[int, datetime]:
    if not line_ids:
        return {}
    rows = session.exec(
        select(Label.line_id, func.max(Label.created_at))
        .where(Label.action == "undo")
        .group_by(Label.line_id)
    ).all()
    return {line_id: _aware(at) for line_id, at in rows if line_id in line_ids}


def _outcome(task, line, verdict: bool | None, undone_at: datetime | None):
    """Return True (right), False (wrong) or None (no verdict yet, or voided)."""
    if verdict is not None:
        return verdict
    if line.status == "voided":
        return None
    # A clerk who undid the line in the queue found the decision wrong.
    if undone_at is not None and undone_at >= _aware(task.created_at):
        return False
    return None


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for values stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def week_of(moment: date | datetime) -> str:
    """Return the Monday of the ISO week of a date or time, as YYYY-MM-DD."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return (day - timedelta(days=day.weekday())).isoformat()


def open_audit_tasks(session: Session, *, limit: int = 100) -> list[ReviewTask]:
    """Return open audit tasks, oldest first."""
    query = (
        select(ReviewTask)
        .where(ReviewTask.status == "open", ReviewTask.reason.startswith(AUDIT_PREFIX))
        .order_by(ReviewTask.created_at, ReviewTask.id)
        .limit(limit)
    )
    return list(session.exec(query).all())
