"""Routes for statement lines: match, upload, read, confirm, change, reverse."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from service import review
from service.api import operations, schemas
from service.api.deps import (
    Caller,
    Idempotency,
    IndexCacheDep,
    RecordId,
    SessionDep,
    SettingsDep,
    idempotent_write,
    rejections_audited,
    require,
)
from service.api.errors import ApiError
from service.explain import AmbiguousLineRef, explanation, find_line
from service.masking import mask_record, masked_for, needs_masking
from service.voiding import void_batch

router = APIRouter(prefix="/v1", tags=["lines"])

Reader = Annotated[Caller, Depends(require("read"))]
AdminWrite = Annotated[Idempotency, Depends(idempotent_write("admin"))]
MatchWrite = Annotated[Idempotency, Depends(idempotent_write("match"))]
ConfirmWrite = Annotated[Idempotency, Depends(idempotent_write("confirm"))]
UPLOAD_CHUNK = 1024 * 1024


@router.post("/match", response_model=schemas.MatchResponse)
def match(
    body: schemas.MatchRequest,
    session: SessionDep,
    settings: SettingsDep,
    index_cache: IndexCacheDep,
    write: MatchWrite,
) -> schemas.MatchResponse:
    """Store lines (once per account and line_ref), match them, return rows."""
    result = operations.match_posted_lines(
        session, body, settings, actor=write.actor, index_cache=index_cache
    )
    return write.finish(result)


@router.post("/statements", response_model=schemas.ImportPublic, status_code=201)
async def upload_statement(
    session: SessionDep,
    settings: SettingsDep,
    index_cache: IndexCacheDep,
    write: MatchWrite,
    file: Annotated[
        UploadFile, File(description="A statement file of any supported format")
    ],
    account: Annotated[str | None, Form(max_length=64)] = None,
    profile: Annotated[str | None, Form(max_length=64)] = None,
    currency: Annotated[
        str | None,
        Form(
            pattern=r"^[A-Z]{3}$",
            description="The account's currency (ISO 4217) when the upload "
            "creates the account; a stored account must already have it",
        ),
    ] = None,
    time_zone: Annotated[
        str | None,
        Form(
            min_length=1,
            max_length=64,
            description="The account's IANA time zone, such as Europe/Berlin, "
            "when the upload creates the account; a stored account must "
            "already have it",
        ),
    ] = None,
    skip_bad_lines: Annotated[
        bool, Form(description="Import the readable lines and list the rest")
    ] = False,
    accept_unbalanced: Annotated[
        bool,
        Form(description="Import a statement whose lines miss its closing balance"),
    ] = False,
    match: Annotated[bool, Form(description="Match the new lines at once")] = True,
) -> schemas.ImportPublic:
    """Import a statement file; lines already imported are not added again."""
    data = await _read_limited(file, settings.max_upload_bytes)
    result = await run_in_threadpool(
        operations.import_upload,
        session,
        data,
        settings,
        file_name=file.filename or "upload",
        account=account,
        profile=profile,
        currency=currency,
        time_zone=time_zone,
        skip_bad_lines=skip_bad_lines,
        accept_unbalanced=accept_unbalanced,
        match=match,
        actor=write.actor,
        index_cache=index_cache,
    )
    return await run_in_threadpool(write.finish, result, 201)


async def _read_limited(file: UploadFile, max_bytes: int) -> bytes:
    chunks = []
    size = 0
    while chunk := await file.read(UPLOAD_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(
                413,
                "payload_too_large",
                f"file {file.filename!r} is larger than the {max_bytes} bytes "
                "allowed (CASHMATCH_MAX_UPLOAD_BYTES); split the statement",
            )
        chunks.append(chunk)
    if size == 0:
        raise ApiError(422, "invalid_file", f"file {file.filename!r} is empty")
    return b"".join(chunks)


@router.get("/lines", response_model=list[schemas.LinePublic])
def find_lines(
    session: SessionDep,
    caller: Reader,
    line_ref: Annotated[str, Query(min_length=1, max_length=200)],
    account: Annotated[str | None, Query(max_length=64)] = None,
) -> list[schemas.LinePublic]:
    """Return the stored line with this line_ref (and account).

    Several lines with the line_ref get 409 `ambiguous_line_ref`, which
    lists their ids for `GET /v1/lines/{line_id}`.
    """
    try:
        line = find_line(session, line_ref, account=account)
    except AmbiguousLineRef as exc:
        raise ApiError(
            409, "ambiguous_line_ref", _ambiguous_ref_hint(exc, account)
        ) from exc
    return [masked_for(caller.role, schemas.LinePublic.model_validate(line))]


def _ambiguous_ref_hint(exc: AmbiguousLineRef, account: str | None) -> str:
    hint = (
        f"{exc}; get one by its id with GET /v1/lines/{{line_id}}, such as "
        f"GET /v1/lines/{exc.line_ids[0]}"
    )
    if account is None and len(exc.accounts) > 1:
        hint += f", or add account={exc.accounts[0]} to the query"
    return hint


@router.get("/lines/{line_id}", response_model=schemas.LineResult)
def get_line(
    line_id: RecordId, session: SessionDep, caller: Reader
) -> schemas.LineResult:
    """Return a stored line with its allocation rows and its review task."""
    line = review.get_line(session, line_id)
    task = review.current_task(session, line.id)
    result = schemas.LineResult(
        line=schemas.LinePublic.model_validate(line),
        allocations=operations.allocation_rows(session, line),
        task_id=task.id if task else None,
    )
    return masked_for(caller.role, result)


@router.get("/lines/{line_id}/explain")
def explain(
    line_id: RecordId, session: SessionDep, settings: SettingsDep, caller: Reader
) -> dict:
    """Return a line's candidates with their scores and reasons."""
    line = review.get_line(session, line_id)
    found = explanation(session, settings, line)
    if needs_masking(caller.role):
        names = [line.counterparty_name]
        return mask_record(found, names=names)
    return found


@router.post("/lines/{line_id}/confirm", response_model=schemas.LineResult)
def confirm(
    line_id: RecordId,
    body: schemas.ConfirmRequest,
    session: SessionDep,
    write: ConfirmWrite,
) -> schemas.LineResult:
    """Confirm a line's allocations, or its suggestion when none are given."""
    with rejections_audited(session, write.actor, line_id, "confirm"):
        outcome = review.confirm_line(
            session,
            line_id,
            operations.parts_of(body.allocations),
            actor=write.actor,
            expected_version=body.version,
        )
    return write.finish(operations.line_result(session, outcome))


@router.post("/lines/{line_id}/change", response_model=schemas.LineResult)
def change(
    line_id: RecordId,
    body: schemas.ChangeRequest,
    session: SessionDep,
    write: ConfirmWrite,
) -> schemas.LineResult:
    """Replace a booked line's allocations; the old ones are reversed."""
    with rejections_audited(session, write.actor, line_id, "change"):
        outcome = review.change_line(
            session,
            line_id,
            operations.parts_of(body.allocations),
            actor=write.actor,
            reason=body.reason,
            expected_version=body.version,
        )
    return write.finish(operations.line_result(session, outcome))


@router.post("/lines/{line_id}/reverse", response_model=schemas.LineResult)
def reverse(
    line_id: RecordId,
    body: schemas.ReverseRequest,
    session: SessionDep,
    write: ConfirmWrite,
) -> schemas.LineResult:
    """Reverse a line's allocations; the line goes back to the review queue."""
    with rejections_audited(session, write.actor, line_id, "reverse"):
        outcome = review.reverse_line(
            session,
            line_id,
            actor=write.actor,
            reason=body.reason,
            expected_version=body.version,
        )
    return write.finish(operations.line_result(session, outcome))


@router.post("/import-batches/{batch_id}/void", response_model=schemas.VoidPublic)
def void_import_batch(
    batch_id: RecordId,
    body: schemas.VoidRequest,
    session: SessionDep,
    write: AdminWrite,
) -> schemas.VoidPublic:
    """Void a wrongly imported batch: its lines and their bookings are reversed."""
    report = void_batch(session, batch_id, actor=write.actor, reason=body.reason)
    result = schemas.VoidPublic(
        batch_id=report.batch_id,
        file_name=report.file_name,
        lines_voided=report.lines_voided,
        allocations_reversed=report.allocations_reversed,
        proposals_rejected=report.proposals_rejected,
        review_tasks_closed=report.review_tasks_closed,
        orders_reopened=report.orders_reopened,
        bank_reversals=report.bank_reversals,
        summary=report.summary(),
    )
    return write.finish(result)
