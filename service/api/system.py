"""Routes open without a key: health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from service.api.deps import SessionDep
from service.metrics import CONTENT_TYPE, metrics_text

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(session: SessionDep) -> dict:
    """Report that the service runs and its database answers."""
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/metrics", response_class=Response)
def metrics(session: SessionDep) -> Response:
    """Return the gauges in the Prometheus text format."""
    return Response(metrics_text(session), media_type=CONTENT_TYPE)
