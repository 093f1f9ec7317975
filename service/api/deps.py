"""Dependencies shared by the routes: session, caller, permissions, idempotency."""

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Annotated

from fastapi import Depends, Path, Request
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.datastructures import UploadFile

from models.db import session_scope
from models.errors import AllocationConflict
from service import idempotency
from service.api.errors import ApiError, Replayed
from service.auth import key_owner
from service.index import IndexCache
from service.review import ReviewConflict, record_rejection
from service.settings import Settings

log = logging.getLogger("cashmatch.service")

IDEMPOTENCY_HEADER = "Idempotency-Key"
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def get_settings(request: Request) -> Settings:
    """Return the settings the app was created with."""
    return request.app.state.settings


def get_index_cache(request: Request) -> IndexCache:
    """Return the app's cached matcher index."""
    return request.app.state.index_cache


def get_engine(request: Request) -> Engine:
    """Return the app's database engine."""
    return request.app.state.engine


def get_session(request: Request) -> Iterator[Session]:
    """Yield a session that commits before the response is sent."""
    with session_scope(get_engine(request)) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
IndexCacheDep = Annotated[IndexCache, Depends(get_index_cache)]
# Record ids are 32-bit integer columns; a larger id cannot exist.
RecordId = Annotated[int, Path(ge=1, le=2**31 - 1)]
# scope="function" commits before the response is sent. A client that reads
# right after a write then gets the new data, and a failed commit is reported.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True)
class Caller:
    """The sender of a request: the key's owner, role and printable prefix."""

    name: str
    role: str
    key_prefix: str


def presented_key(request: Request) -> str | None:
    """Return the key from `X-API-Key` or `Authorization: Bearer`, if any."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def current_caller(request: Request, session: SessionDep) -> Caller:
    """Return the caller of a request, or raise 401."""
    key = presented_key(request)
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key; send it in the X-API-Key header or as "
            "'Authorization: Bearer <key>'",
        )
    record = key_owner(session, key)
    if record is None:
        raise ApiError(401, "unauthorized", "API key is invalid or revoked")
    return Caller(record.user_name, record.role, record.prefix)


def require(permission: str):
    """Return a dependency that lets only roles with `permission` through."""
    from service.auth import allows

    def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not allows(caller.role, permission):
            raise ApiError(
                403,
                "forbidden",
                f"role {caller.role!r} of {caller.name!r} may not {permission}; "
                "use a key with a role that may",
            )
        return caller

    return check


async def request_fingerprint(request: Request) -> str:
    """Return the fingerprint of the request's method, path and body.

    A JSON body counts by its parsed value, so a retry that serialises the
    same JSON with other whitespace or key order has the same fingerprint.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/"):
        body = await _form_bytes(request)
    else:
        body = await request.body()
        if _is_json(content_type):
            body = canonical_json(body)
    return idempotency.request_fingerprint(request.method, request.url.path, body)


def _is_json(content_type: str) -> bool:
    # FastAPI reads a body without a content type as JSON too.
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in ("", "application/json") or media_type.endswith("+json")


def canonical_json(body: bytes) -> bytes:
    """Return the JSON text of the body with sorted keys and no whitespace.

    Numbers are read as Decimal and written in normalised form, so `240`,
    `240.0` and `240.00` are one value and no digit is lost to floating
    point. A body that cannot be parsed, because it is not valid
    JSON or is nested too deeply, is returned unchanged.
    """
    try:
        value = json.loads(body, parse_float=Decimal, parse_int=Decimal)
        return _canonical_text(value).encode()
    except (ValueError, RecursionError):
        return body


def _canonical_text(value) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        inner = ",".join(f"{json.dumps(k)}:{_canonical_text(v)}" for k, v in items)
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical_text(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return _number_text(value)
    return json.dumps(value)


def _number_text(number: Decimal) -> str:
    # The normalised scientific form is one text per value (240 is 2.4E+2),
    # and unlike fixed-point text it stays short for an exponent like 1e999999.
    # The context keeps every digit, because rounding would make two values
    # that differ in the 29th digit one.
    if number.is_zero():
        return "0"
    return str(number.normalize(EXACT))


async def _form_bytes(request: Request) -> bytes:
    # The multipart stream is consumed by form parsing, so the fingerprint
    # is built from the parsed fields and the uploaded files' bytes.
    form = await request.form()
    parts = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            content = await value.read()
            await value.seek(0)
            digest = hashlib.sha256(content).hexdigest()
            parts.append(f"{name}\x00file\x00{value.filename}\x00{digest}")
        else:
            parts.append(f"{name}\x00{value}")
    return "\x01".join(sorted(parts)).encode()


class Idempotency:
    """The Idempotency-Key of a write, reserved in the request's session."""

    def __init__(self, session: Session, actor: str, key: str | None):
        self.session = session
        self.actor = actor
        self.key = key

    def finish(self, response: BaseModel, status_code: int = 200) -> BaseModel:
        """Store the response for retries with the same key and return it."""
        if self.key is not None:
            idempotency.remember(
                self.session,
                actor=self.actor,
                key=self.key,
                status_code=status_code,
                body=response.model_dump(mode="json"),
            )
        return response


def idempotent_write(permission: str):
    """Return a dependency for a write: checks the role, then reserves the key.

    A retry whose key already has a stored response raises `Replayed`,
    which the app turns into that stored response.
    """

    def reserve(
        request: Request,
        session: SessionDep,
        caller: Annotated[Caller, Depends(require(permission))],
        fingerprint: Annotated[str, Depends(request_fingerprint)],
    ) -> Idempotency:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return Idempotency(session, caller.name, None)
        stored = idempotency.reserve(
            session, actor=caller.name, key=key, fingerprint=fingerprint
        )
        if stored is not None:
            raise Replayed(stored.status_code, stored.body)
        return Idempotency(session, caller.name, key)

    return reserve


@contextmanager
def rejections_audited(session: Session, actor: str, line_id: int | None, action: str):
    """Keep a rejected booking in the audit log, then let the error through.

    The failed transaction is rolled back first, so the audit event commits
    alone and the rejected booking leaves nothing else behind.
    """
    try:
        yield
    except (AllocationConflict, ReviewConflict) as exc:
        session.rollback()
        record_rejection(
            session, actor=actor, line_id=line_id, action=action, reason=str(exc)
        )
        session.commit()
        log.warning("%s of line %s by %s rejected: %s", action, line_id, actor, exc)
        raise
