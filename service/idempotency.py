"""Idempotency keys: a retried write returns its first result.

A write that carries an `Idempotency-Key` reserves the key for its caller
inside its own transaction, before it changes anything. A retry that finds
the finished record gets the stored response back and changes nothing. A
retry that arrives while the first attempt still runs waits on the unique
index (PostgreSQL) or on the write lock (SQLite) and then sees the record.
A write that fails is rolled back with its reservation, so a retry runs it
again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.errors import CashmatchError
from models.tables import IdempotencyRecord

log = logging.getLogger("cashmatch.service")

MAX_KEY_LENGTH = 200
PENDING = 0


class IdempotencyKeyError(CashmatchError):
    """An Idempotency-Key that is malformed or reused for another request."""


@dataclass(frozen=True)
class StoredResponse:
    """The status and JSON body of a write's first response."""

    status_code: int
    body: dict | list | None


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Return a SHA-256 of the method, path and body of a request."""
    digest = hashlib.sha256()
    digest.update(method.upper().encode())
    digest.update(b"\x00")
    digest.update(path.encode())
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


def validate_key(key: str) -> None:
    """Raise IdempotencyKeyError unless the key is printable and short enough."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise IdempotencyKeyError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters, "
            f"got {len(key)}; send a UUID"
        )
    if not key.isprintable():
        raise IdempotencyKeyError(
            "Idempotency-Key contains control characters; send a UUID"
        )


def reserve(
    session: Session, *, actor: str, key: str, fingerprint: str
) -> StoredResponse | None:
    """Reserve the key for this request, or return the stored first response.

    Returns None when the caller should go on and run the write. Raises
    IdempotencyKeyError when the key was used for a different request. On a
    race with a concurrent first attempt the session is rolled back, so call
    this before the write changes anything.
    """
    validate_key(key)
    stored = _stored(session, actor=actor, key=key, fingerprint=fingerprint)
    if stored is not None:
        return stored

    record = IdempotencyRecord(
        actor=actor, key=key, request_hash=fingerprint, status_code=PENDING
    )
    try:
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        # Another request with this key committed first; its record is
        # visible once the unique index stopped blocking this insert.
        session.rollback()
        stored = _stored(session, actor=actor, key=key, fingerprint=fingerprint)
        if stored is None:
            raise IdempotencyKeyError(
                f"Idempotency-Key {key!r} is in use by a request that has not "
                "finished; retry later"
            ) from None
        return stored
    return None


def remember(
    session: Session,
    *,
    actor: str,
    key: str,
    status_code: int,
    body: dict | list | None,
) -> None:
    """Store the response of a write whose key `reserve` took."""
    record = _record(session, actor, key)
    if record is None:
        raise IdempotencyKeyError(
            f"Idempotency-Key {key!r} was not reserved before the write"
        )
    record.status_code = status_code
    record.body = body
    session.add(record)
    session.flush()


def _stored(
    session: Session, *, actor: str, key: str, fingerprint: str
) -> StoredResponse | None:
    record = _record(session, actor, key)
    if record is None or record.status_code == PENDING:
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyKeyError(
            f"Idempotency-Key {key!r} was already used for a different "
            "request; send a new key for a new request"
        )
    log.info("replayed the response of Idempotency-Key %r for %s", key, actor)
    return StoredResponse(record.status_code, record.body)


def _record(session: Session, actor: str, key: str) -> IdempotencyRecord | None:
    query = select(IdempotencyRecord).where(
        IdempotencyRecord.actor == actor, IdempotencyRecord.key == key
    )
    return session.exec(query).first()
