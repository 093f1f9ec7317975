"""Users, passwords and API keys, all stored as hashes.

Roles limit what a caller may do: the ERP syncs master data and matches
lines, clerks decide review tasks, analysts train and promote models, and
admins may do everything.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from sqlmodel import Session, select

from models.errors import CashmatchError
from models.tables import ApiKey, AuditEvent, User, utcnow

log = logging.getLogger("cashmatch.service")

ROLES = ("erp", "clerk", "analyst", "admin")
PERMISSIONS: dict[str, frozenset[str]] = {
    "erp": frozenset({"read", "sync", "match", "confirm"}),
    "clerk": frozenset({"read", "match", "confirm", "review"}),
    "analyst": frozenset({"read", "train"}),
    "admin": frozenset(
        {"read", "sync", "match", "confirm", "review", "train", "admin"}
    ),
}
KEY_PREFIX = "cm_"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class AuthError(CashmatchError):
    """A user, password or key that cannot be accepted."""


def allows(role: str, permission: str) -> bool:
    """Tell whether a role may use a permission."""
    return permission in PERMISSIONS.get(role, frozenset())


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AuthError(f"role {role!r} is not one of {', '.join(ROLES)}")


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Tell whether a password fits a stored hash, in constant time."""
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_hex, digest_hex = stored.split("$")
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def upsert_user(
    session: Session, name: str, *, role: str, password: str | None = None
) -> User:
    """Create a user or change its role and, when given, its password."""
    _check_role(role)
    if password is not None and len(password) < 8:
        raise AuthError(f"password for {name!r} is shorter than 8 characters")
    user = session.get(User, name)
    if user is None:
        user = User(name=name, role=role)
    user.role = role
    if password is not None:
        user.password_hash = hash_password(password)
    session.add(user)
    session.flush()
    return user


def active_user(session: Session, name: str, permission: str) -> User:
    """Return the user `name` when it may act with `permission`.

    A user is active while it can still sign in or call the API: it has a
    password or an API key that is not revoked. Raises AuthError for an
    unknown or inactive user and for a role without the permission.
    """
    user = session.get(User, name)
    if user is None:
        raise AuthError(
            f"user {name!r} not found; give the name of a user added with "
            "`cashmatch users add`"
        )
    if not _can_sign_in(session, user):
        raise AuthError(
            f"user {name!r} is inactive: it has no password and no API key "
            "that is not revoked; set a password with `cashmatch users add`"
        )
    if not allows(user.role, permission):
        allowed = ", ".join(role for role in ROLES if allows(role, permission))
        raise AuthError(
            f"role {user.role!r} of user {name!r} may not {permission}; "
            f"act as a user with role {allowed}"
        )
    return user


def _can_sign_in(session: Session, user: User) -> bool:
    if user.password_hash:
        return True
    live_key = session.exec(
        select(ApiKey.prefix).where(
            ApiKey.user_name == user.name, ApiKey.revoked_at.is_(None)
        )
    ).first()
    return live_key is not None


def sign_in(session: Session, name: str, password: str) -> User | None:
    """Return the user when the password is right, else None."""
    user = session.get(User, name)
    if user is None or not verify_password(password, user.password_hash):
        log.warning("sign-in refused for user %r", name)
        return None
    return user


def _key_hash(key: str) -> str:
    # API keys are 256-bit random tokens, so a plain SHA-256 cannot be
    # brute-forced the way a password hash could.
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, *, role: str, actor: str) -> str:
    """Create a key for a user or service account and return it once."""
    _check_role(role)
    if session.get(User, name) is None:
        upsert_user(session, name, role=role)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = key[:10]
    session.add(
        ApiKey(key_hash=_key_hash(key), prefix=prefix, user_name=name, role=role)
    )
    session.add(
        AuditEvent(
            actor=actor,
            action="create_key",
            entity="api_key",
            entity_id=prefix,
            detail={"user": name, "role": role},
        )
    )
    session.flush()
    log.info("API key %s created for %s with role %s", prefix, name, role)
    return key


def revoke_api_key(session: Session, prefix: str, *, actor: str) -> ApiKey:
    """Revoke the key with this prefix."""
    keys = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).all()
    if len(keys) != 1:
        raise AuthError(
            f"{len(keys)} keys start with {prefix!r}; give the 10-character "
            "prefix that `cashmatch keys list` shows"
        )
    key = keys[0]
    key.revoked_at = utcnow()
    session.add(key)
    session.add(
        AuditEvent(actor=actor, action="revoke_key", entity="api_key", entity_id=prefix)
    )
    log.info("API key %s revoked by %s", prefix, actor)
    return key


def list_api_keys(session: Session) -> list[ApiKey]:
    """Return every key, newest first."""
    return list(session.exec(select(ApiKey).order_by(ApiKey.created_at.desc())).all())


def key_owner(session: Session, key: str) -> ApiKey | None:
    """Return the active key record for a presented key, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    found = session.exec(
        select(ApiKey).where(ApiKey.key_hash == _key_hash(key))
    ).first()
    if found is None or found.revoked_at is not None:
        return None
    return found
