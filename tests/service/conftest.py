"""Fixtures shared by the service tests: the cold-start model and API keys."""

import pytest

from models.db import session_scope
from service.auth import create_api_key
from training.cold_start import cold_start_model

ROLES = ("erp", "clerk", "analyst", "admin")


@pytest.fixture(scope="session")
def cold_start_dir(shared_cold_start):
    """Train (or load) the cold-start model once per test session."""
    cold_start_model(shared_cold_start)
    return shared_cold_start


@pytest.fixture
def keys(engine) -> dict[str, dict[str, str]]:
    """Return an X-API-Key header per role, and for two clerks by name.

    The user behind `keys["admin"]` is `admin-1`; `keys["clerk-a"]` and
    `keys["clerk-b"]` belong to the clerks `clerk-a` and `clerk-b`.
    """
    users = [(f"{role}-1", role, role) for role in ROLES]
    users += [("clerk-a", "clerk", "clerk-a"), ("clerk-b", "clerk", "clerk-b")]
    with session_scope(engine) as session:
        return {
            name: {"X-API-Key": create_api_key(session, user, role=role, actor="test")}
            for user, role, name in users
        }
