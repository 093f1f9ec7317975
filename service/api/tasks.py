"""Routes for the review queue: list, claim, release and decide tasks."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from service import review
from service.api import operations, schemas
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
from service.booking import Part
from service.masking import masked_for

router = APIRouter(prefix="/v1/review-tasks", tags=["review tasks"])

Reader = Annotated[Caller, Depends(require("read"))]
ReviewWrite = Annotated[Idempotency, Depends(idempotent_write("review"))]


def task_filter(
    account: Annotated[str | None, Query(max_length=64)] = None,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    min_amount: Annotated[schemas.Money | None, Query()] = None,
    max_amount: Annotated[schemas.Money | None, Query()] = None,
    date_from: Annotated[schemas.IsoDate | None, Query()] = None,
    date_to: Annotated[schemas.IsoDate | None, Query()] = None,
    anomaly: Annotated[
        str | None,
        Query(max_length=32, description="flagged, none, or one anomaly reason"),
    ] = None,
    decision: Annotated[Literal["review", "unmatched"] | None, Query()] = None,
) -> review.TaskFilter:
    """Return the queue filter from query parameters."""
    return review.TaskFilter(
        account=account,
        customer_id=customer_id,
        min_amount=min_amount,
        max_amount=max_amount,
        date_from=date_from,
        date_to=date_to,
        anomaly=anomaly,
        decision=decision,
    )


FilterDep = Annotated[review.TaskFilter, Depends(task_filter)]


@router.get("", response_model=schemas.TaskPage)
def list_tasks(
    session: SessionDep,
    caller: Reader,
    filters: FilterDep,
    sort: Annotated[
        Literal["priority", "amount", "age", "uncertainty"], Query()
    ] = "priority",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> schemas.TaskPage:
    """Return open review tasks in queue order, with counts."""
    page = review.list_tasks(session, filters, sort=sort, limit=limit, offset=offset)
    result = schemas.TaskPage(
        total=page.total,
        counts=page.counts,
        items=[operations.task_public(task, line) for task, line in page.items],
    )
    return masked_for(caller.role, result)


@router.get("/{task_id}", response_model=schemas.TaskPublic)
def get_task(
    task_id: RecordId, session: SessionDep, caller: Reader
) -> schemas.TaskPublic:
    """Return one review task with its line and candidates."""
    task = review.get_task(session, task_id)
    result = operations.task_public(task, review.get_line(session, task.line_id))
    return masked_for(caller.role, result)


@router.post("/claim-next", response_model=schemas.TaskPublic)
def claim_next(
    session: SessionDep, settings: SettingsDep, write: ReviewWrite, filters: FilterDep
) -> schemas.TaskPublic:
    """Claim the first free task in queue order for `claim_minutes`."""
    task = review.claim_next(
        session, actor=write.actor, minutes=settings.claim_minutes, filters=filters
    )
    if task is None:
        raise ApiError(404, "queue_empty", "no open review task is free to claim")
    line = review.get_line(session, task.line_id)
    return write.finish(operations.task_public(task, line))


@router.post("/{task_id}/claim", response_model=schemas.TaskPublic)
def claim(
    task_id: RecordId, session: SessionDep, settings: SettingsDep, write: ReviewWrite
) -> schemas.TaskPublic:
    """Claim a task, or renew one's own claim, for `claim_minutes`."""
    task = review.claim(
        session, task_id, actor=write.actor, minutes=settings.claim_minutes
    )
    line = review.get_line(session, task.line_id)
    return write.finish(operations.task_public(task, line))


@router.post("/{task_id}/release", response_model=schemas.TaskPublic)
def release(
    task_id: RecordId, session: SessionDep, write: ReviewWrite
) -> schemas.TaskPublic:
    """Give up one's claim on a task."""
    task = review.release(session, task_id, actor=write.actor)
    line = review.get_line(session, task.line_id)
    return write.finish(operations.task_public(task, line))


@router.post("/{task_id}/decision", response_model=schemas.LineResult)
def decide(
    task_id: RecordId,
    body: schemas.DecisionRequest,
    session: SessionDep,
    write: ReviewWrite,
) -> schemas.LineResult:
    """Record a clerk's decision; it is booked and kept as a label."""
    decision = review.ReviewDecision(
        action=body.action,
        candidate=body.candidate,
        parts=tuple(
            Part(a.target, a.amount, a.customer_id, a.order_id)
            for a in body.allocations or ()
        ),
        customer_id=body.customer_id,
        note=body.note,
    )
    task = review.get_task(session, task_id)
    with rejections_audited(session, write.actor, task.line_id, body.action):
        outcome = review.decide(
            session, task_id, decision, actor=write.actor, expected_version=body.version
        )
    return write.finish(operations.line_result(session, outcome))
