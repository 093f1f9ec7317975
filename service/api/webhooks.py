"""Routes for webhooks: register endpoints, watch and retry deliveries."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from service import webhooks
from service.api import schemas
from service.api.deps import (
    Caller,
    Idempotency,
    RecordId,
    SessionDep,
    idempotent_write,
    require,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Admin = Annotated[Caller, Depends(require("admin"))]
AdminWrite = Annotated[Idempotency, Depends(idempotent_write("admin"))]


@router.post("", response_model=schemas.WebhookPublic, status_code=201)
def register(
    body: schemas.WebhookCreate, session: SessionDep, write: AdminWrite
) -> schemas.WebhookPublic:
    """Register a URL for booked and reversed allocations from now on."""
    endpoint = webhooks.register_endpoint(
        session,
        url=body.url,
        secret=body.secret,
        description=body.description,
        actor=write.actor,
    )
    return write.finish(schemas.WebhookPublic.model_validate(endpoint), 201)


@router.get("", response_model=list[schemas.WebhookPublic])
def list_endpoints(session: SessionDep, caller: Admin) -> list[schemas.WebhookPublic]:
    """Return the registered endpoints, without their secrets."""
    return [
        schemas.WebhookPublic.model_validate(endpoint)
        for endpoint in webhooks.list_endpoints(session)
    ]


@router.delete("/{endpoint_id}", response_model=schemas.WebhookPublic)
def disable(
    endpoint_id: RecordId, session: SessionDep, write: AdminWrite
) -> schemas.WebhookPublic:
    """Stop queueing events for an endpoint; queued deliveries still go out."""
    endpoint = webhooks.disable_endpoint(session, endpoint_id, actor=write.actor)
    return write.finish(schemas.WebhookPublic.model_validate(endpoint))


@router.get("/deliveries", response_model=list[schemas.WebhookDeliveryPublic])
def list_deliveries(
    session: SessionDep,
    caller: Admin,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    endpoint_id: Annotated[int | None, Query(ge=1, le=schemas.MAX_INT)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[schemas.WebhookDeliveryPublic]:
    """Return deliveries, newest first; failed ones stay until retried."""
    found = webhooks.list_deliveries(
        session, status=status, endpoint_id=endpoint_id, limit=limit
    )
    return [schemas.WebhookDeliveryPublic.model_validate(row) for row in found]


@router.post(
    "/deliveries/{delivery_id}/retry", response_model=schemas.WebhookDeliveryPublic
)
def retry(
    delivery_id: RecordId, session: SessionDep, write: AdminWrite
) -> schemas.WebhookDeliveryPublic:
    """Send a pending or failed delivery at the next dispatcher round."""
    delivery = webhooks.retry_delivery(session, delivery_id, actor=write.actor)
    return write.finish(schemas.WebhookDeliveryPublic.model_validate(delivery))
