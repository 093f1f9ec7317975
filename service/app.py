"""The FastAPI application: the /v1 API, health, metrics and the review page.

`cashmatch serve` runs `create_app` as a uvicorn factory. The database is
migrated at start-up; all state lives in it, so several workers can serve
side by side.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from models.db import make_engine, migrate, session_scope
from service.api import ledger as ledger_api
from service.api import lines, masterdata, reports, system, tasks, webhooks
from service.api import models as models_api
from service.api.errors import (
    BodySizeLimit,
    ReferencePagePolicy,
    install_error_handlers,
)
from service.api.schemas import ErrorBody
from service.index import IndexCache
from service.logging_setup import RequestIdMiddleware
from service.settings import Settings, get_settings

log = logging.getLogger("cashmatch.service")

# Audit ids on PostgreSQL can commit out of order; the feed holds back
# events younger than this so a reader never skips one (see operations.feed).
POSTGRES_FEED_SETTLE_SECONDS = 2.0
DOCS_STATIC_URL = "/docs-static"
ERROR_RESPONSES = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 409, 413, 422)
}


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    review_page: bool = True,
) -> FastAPI:
    """Build the app on the configured database, migrated to the latest."""
    settings = settings or get_settings()
    if engine is None:
        engine = make_engine(settings.database_url)
    migrate(engine)
    _ensure_serving_model(settings, engine)

    # FastAPIOffline serves /docs and /redoc with the Swagger UI and ReDoc
    # files of the fastapi-offline package, so the pages work without a CDN.
    app = FastAPIOffline(
        static_url=DOCS_STATIC_URL,
        title="Cashmatch",
        version="1",
        description="Match bank-statement lines to customers, orders and "
        "prepayment balances. Money is sent and returned as decimal strings.",
        responses=ERROR_RESPONSES,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.index_cache = IndexCache()
    app.state.feed_settle_seconds = (
        POSTGRES_FEED_SETTLE_SECONDS if engine.dialect.name == "postgresql" else 0.0
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(ReferencePagePolicy, paths=("/docs", "/redoc"))
    # Added last, so it wraps everything and even a 413 carries the id.
    app.add_middleware(RequestIdMiddleware)
    for router in (
        system.router,
        lines.router,
        masterdata.router,
        tasks.router,
        reports.router,
        webhooks.router,
    ):
        app.include_router(router)
    ledger_api.install(app)
    models_api.install(app)
    if review_page:
        _mount_review_page(app, settings, engine)
    log.info("app created on %s", engine.url.render_as_string(hide_password=True))
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the matcher's index, then deliver webhooks while the app serves.

    The index takes seconds to build at 100,000 open orders; building it
    before the server accepts requests keeps that wait off the first match.
    """
    from service.webhooks import start_dispatcher

    await anyio.to_thread.run_sync(_build_index, app)

    dispatcher = start_dispatcher(
        app.state.engine, settle_seconds=app.state.feed_settle_seconds
    )
    try:
        yield
    finally:
        if dispatcher is not None:
            dispatcher.stop()


def _build_index(app: FastAPI) -> None:
    cache = app.state.index_cache
    with (
        session_scope(app.state.engine) as session,
        cache.use(session, app.state.settings),
    ):
        pass


def _ensure_serving_model(settings: Settings, engine: Engine) -> None:
    """Load the serving model, installing the cold-start model if none serves.

    Doing this at start-up keeps the first requests from racing to install
    the cold-start model, which would fail all but one of them.
    """
    from service.serving import current_model

    for attempt in range(1, 3):
        try:
            with session_scope(engine) as session:
                model = current_model(session, settings)
        except IntegrityError:
            # Another worker installed the same model at the same moment.
            if attempt == 2:
                raise
            log.info("another worker installed the serving model; loading it")
            continue
        log.info("serving model %s", model.version)
        return


def _mount_review_page(app: FastAPI, settings: Settings, engine: Engine) -> None:
    import gradio as gr

    from review_ui.app import build_review_page, page_head

    blocks = build_review_page(settings, engine)
    gr.mount_gradio_app(app, blocks, path="/review", head=page_head(), footer_links=[])
