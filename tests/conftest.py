"""Shared fixtures: a migrated database per test, on SQLite and PostgreSQL.

Database tests take the `engine` fixture. It runs once on a fresh SQLite
file and, when CASHMATCH_TEST_POSTGRES_URL is set, once more on a fresh
PostgreSQL database cloned from a migrated template.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from models.db import make_engine, migrate

POSTGRES_URL = os.environ.get("CASHMATCH_TEST_POSTGRES_URL", "")
SAMPLES_DIR = os.environ.get("CASHMATCH_SAMPLES_DIR", "")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BROWSER_TIMEOUT_MS = 30_000


@pytest.fixture(scope="session", autouse=True)
def shared_cold_start(tmp_path_factory):
    """Train the cold-start model once per test run, not once per test."""
    folder = tmp_path_factory.mktemp("cold-start")
    previous = os.environ.get("CASHMATCH_COLD_START_DIR")
    os.environ["CASHMATCH_COLD_START_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("CASHMATCH_COLD_START_DIR", None)
    else:
        os.environ["CASHMATCH_COLD_START_DIR"] = previous


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One MLflow store for the whole test run; creating one takes seconds."""
    folder = tmp_path_factory.getbasetemp() / "mlflow-store"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "cashmatch.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template():
    if not POSTGRES_URL:
        pytest.skip("CASHMATCH_TEST_POSTGRES_URL is not set")
    name = f"cashmatch_template_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name)
    engine = make_engine(url.render_as_string(hide_password=False))
    migrate(engine)
    engine.dispose()
    yield admin, name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _postgres_clone(template) -> tuple[str, callable]:
    admin, template_name = template
    name = f"cashmatch_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    url = make_url(POSTGRES_URL).set(database=name)

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return url.render_as_string(hide_password=False), drop


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path, sqlite_template):
    """Return the URL of a fresh, migrated database."""
    if request.param == "sqlite":
        path = tmp_path / "cashmatch.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return

    template = request.getfixturevalue("postgres_template")
    url, drop = _postgres_clone(template)
    yield url
    drop()


@pytest.fixture
def engine(database_url):
    """Return an engine on a fresh, migrated database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def samples_dir() -> Path:
    """Return the folder of the public sample statements, or skip."""
    if not SAMPLES_DIR:
        pytest.skip("CASHMATCH_SAMPLES_DIR is not set; the sample tests need it")
    path = Path(SAMPLES_DIR)
    if not path.is_dir():
        pytest.skip(f"CASHMATCH_SAMPLES_DIR={SAMPLES_DIR} is not a folder")
    return path


@pytest.fixture(scope="session")
def playwright_api():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed; apt-get install chromium")
    return pytest.importorskip(
        "playwright.sync_api",
        reason="playwright is not installed; pip install playwright",
    )


@pytest.fixture
def page(playwright_api, tmp_path):
    """A page of Debian's Chromium, headless, with a profile of its own."""
    profile = tmp_path / "chromium-profile"
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        yield page
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def serve():
    """Return `serving`, which runs an app on 127.0.0.1 for a `with` block."""
    return serving


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port of 127.0.0.1 and yield its base URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 30 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
