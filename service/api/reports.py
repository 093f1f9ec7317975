"""Routes that read out: the allocation feed, exports and the audit log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from service import review
from service.api import exporting, operations, schemas
from service.api.deps import Caller, SessionDep, require
from service.masking import mask_line_fields, needs_masking

router = APIRouter(prefix="/v1", tags=["reports"])

Reader = Annotated[Caller, Depends(require("read"))]
Admin = Annotated[Caller, Depends(require("admin"))]
Format = Literal["csv", "xlsx"]
# Exports are CSV or XLSX files, and the OpenAPI document declares both types.
DOWNLOAD_ROUTE = {
    "response_class": Response,
    "responses": {
        200: {
            "description": "The file as an attachment",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                exporting.XLSX_TYPE: {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
}


@router.get("/feed", response_model=schemas.FeedPage)
def feed(
    request: Request,
    session: SessionDep,
    caller: Reader,
    cursor: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> schemas.FeedPage:
    """Return allocations booked and reversed after `cursor`."""
    settle = request.app.state.feed_settle_seconds
    return operations.feed(session, cursor=cursor, limit=limit, settle_seconds=settle)


@router.get("/exports/allocations.{fmt}", **DOWNLOAD_ROUTE)
def export_allocations(
    fmt: Format,
    session: SessionDep,
    caller: Reader,
    account: Annotated[str | None, Query(max_length=64)] = None,
    date_from: Annotated[schemas.IsoDate | None, Query()] = None,
    date_to: Annotated[schemas.IsoDate | None, Query()] = None,
) -> Response:
    """Export the allocations output of stored lines as CSV or XLSX."""
    table = exporting.allocations_table(
        session, account=account, date_from=date_from, date_to=date_to
    )
    return exporting.response(table, fmt)


@router.get("/exports/review-tasks.{fmt}", **DOWNLOAD_ROUTE)
def export_review_tasks(fmt: Format, session: SessionDep, caller: Reader) -> Response:
    """Export the open review tasks as CSV or XLSX."""
    table = exporting.review_tasks_table(session)
    if needs_masking(caller.role):
        table.rows = [mask_line_fields(row) for row in table.rows]
    return exporting.response(table, fmt)


@router.get("/exports/ledger.{fmt}", **DOWNLOAD_ROUTE)
def export_ledger(
    fmt: Format,
    session: SessionDep,
    caller: Reader,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Export prepayment ledgers, of one customer or all, as CSV or XLSX."""
    return exporting.response(exporting.ledger_table(session, customer_id), fmt)


@router.get("/audit", response_model=list[schemas.AuditEventPublic])
def audit(
    session: SessionDep,
    caller: Admin,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[schemas.AuditEventPublic]:
    """Return the newest audit events; admins only."""
    events = review.audit_log(session, limit=limit, actor=actor, action=action)
    return [schemas.AuditEventPublic.model_validate(event) for event in events]
