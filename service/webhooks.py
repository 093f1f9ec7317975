"""Webhooks: booked and reversed allocations pushed to the ERP's URLs.

An admin registers a URL and a secret. A dispatcher that runs beside the
API, never inside the request that booked the money, reads the same audit
events as `GET /v1/feed`, queues one delivery per event and endpoint in the
`webhook_delivery` table, and POSTs each as JSON:

    {"id": "evt-41-0", "type": "allocation.booked",
     "created_at": "...", "data": {<the feed event>}}

with the headers `Cashmatch-Event-Id`, `Cashmatch-Event-Type`,
`Cashmatch-Timestamp` (Unix seconds) and `Cashmatch-Signature`, which is
`v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under the secret.

A delivery is claimed before it is sent and recorded after, each in a
short transaction, so no database lock is held during the HTTP call. A
non-2xx response or a network error schedules the next attempt after a
backoff that doubles from `backoff_seconds` up to `max_backoff_seconds`;
after `max_attempts` the delivery is `failed` and stays visible until an
admin retries it. A dispatcher that stops between sending and recording
sends the event again later, so receivers should drop repeated event ids.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models.db import session_scope
from models.errors import CashmatchError
from models.tables import AuditEvent, WebhookDelivery, WebhookEndpoint, utcnow
from service.logging_setup import register_secret

log = logging.getLogger("cashmatch.service")

EVENT_ID_HEADER = "Cashmatch-Event-Id"
EVENT_TYPE_HEADER = "Cashmatch-Event-Type"
TIMESTAMP_HEADER = "Cashmatch-Timestamp"
SIGNATURE_HEADER = "Cashmatch-Signature"
EVENT_TYPES = {"booked": "allocation.booked", "reversed": "allocation.reversed"}
MIN_SECRET_LENGTH = 16
FEED_PAGE = 500


class WebhookSettings(BaseSettings):
    """Dispatcher settings, read from CASHMATCH_WEBHOOK_* variables."""

    model_config = SettingsConfigDict(env_prefix="CASHMATCH_WEBHOOK_", extra="ignore")

    interval_seconds: float = Field(
        default=5.0, ge=0, description="Pause between rounds; 0 runs no dispatcher"
    )
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    backoff_seconds: float = Field(default=30.0, ge=0)
    max_backoff_seconds: float = Field(default=3600.0, ge=0)
    batch_size: int = Field(default=50, ge=1)


class InvalidWebhook(CashmatchError):
    """A webhook URL or secret that cannot be used."""


class WebhookNotFound(CashmatchError):
    """No webhook endpoint or delivery has the given id."""


# Endpoints -------------------------------------------------------------------


def register_endpoint(
    session: Session, *, url: str, secret: str, description: str, actor: str
) -> WebhookEndpoint:
    """Store an endpoint that receives the events booked from now on."""
    _check_url(url)
    if len(secret) < MIN_SECRET_LENGTH:
        raise InvalidWebhook(
            f"webhook secret has {len(secret)} characters; use a random secret "
            f"of at least {MIN_SECRET_LENGTH}"
        )
    register_secret(secret)
    latest = session.exec(select(func.max(AuditEvent.id))).one() or 0
    endpoint = WebhookEndpoint(
        url=url, secret=secret, description=description, cursor=latest, created_by=actor
    )
    session.add(endpoint)
    session.flush()
    _audit(session, actor, "create_webhook", endpoint, {"url": url})
    log.info("webhook %d registered for %s by %s", endpoint.id, url, actor)
    return endpoint


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhook(
            f"webhook URL {url!r} is not an http or https URL with a host; "
            "send one such as https://erp.example/cashmatch-events"
        )


def disable_endpoint(
    session: Session, endpoint_id: int, *, actor: str
) -> WebhookEndpoint:
    """Stop queueing events for an endpoint; pending deliveries still go out."""
    endpoint = get_endpoint(session, endpoint_id)
    if endpoint.active:
        endpoint.active = False
        endpoint.disabled_at = utcnow()
        session.add(endpoint)
        _audit(session, actor, "disable_webhook", endpoint, {"url": endpoint.url})
        log.info("webhook %d disabled by %s", endpoint.id, actor)
    return endpoint


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    """Return an endpoint or raise WebhookNotFound."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise WebhookNotFound(
            f"webhook {endpoint_id} does not exist; GET /v1/webhooks lists them"
        )
    return endpoint


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Return every endpoint, oldest first."""
    return list(session.exec(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def list_deliveries(
    session: Session,
    *,
    status: str | None = None,
    endpoint_id: int | None = None,
    limit: int = 100,
) -> list[WebhookDelivery]:
    """Return deliveries, newest first, filtered by status and endpoint."""
    query = select(WebhookDelivery)
    if status:
        query = query.where(WebhookDelivery.status == status)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    query = query.order_by(WebhookDelivery.id.desc()).limit(limit)
    return list(session.exec(query))


def retry_delivery(
    session: Session, delivery_id: int, *, actor: str
) -> WebhookDelivery:
    """Send a delivery again at the next round.

    A failed delivery gets one more attempt; if that fails too, it is
    failed again and waits for the next manual retry.
    """
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise WebhookNotFound(
            f"webhook delivery {delivery_id} does not exist; "
            "GET /v1/webhooks/deliveries lists them"
        )
    if delivery.status != "delivered":
        delivery.status = "pending"
        delivery.next_attempt_at = utcnow()
        session.add(delivery)
        log.info("webhook delivery %d queued again by %s", delivery.id, actor)
    return delivery


def _audit(session, actor, action, endpoint, detail) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            entity="webhook",
            entity_id=str(endpoint.id),
            detail=detail,
        )
    )


# Queueing ---------------------------------------------------------------------


def enqueue_events(
    session: Session, *, settle_seconds: float, now: datetime | None = None
) -> int:
    """Queue a delivery per new feed event and active endpoint; return the count.

    The deliveries are due at `now` (default: the current time).

    Each endpoint's row is locked while its cursor moves, so two
    dispatchers never queue the same events twice.
    """
    from service.api.operations import feed

    query = select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    queued = 0
    for endpoint in session.exec(query).all():
        page = feed(
            session,
            cursor=endpoint.cursor,
            limit=FEED_PAGE,
            settle_seconds=settle_seconds,
        )
        for delivery in _deliveries(endpoint, page.events):
            delivery.next_attempt_at = now or utcnow()
            session.add(delivery)
            queued += 1
        endpoint.cursor = page.next_cursor
        session.add(endpoint)
    session.flush()
    return queued


def _deliveries(endpoint: WebhookEndpoint, events) -> list[WebhookDelivery]:
    deliveries = []
    position: dict[int, int] = {}
    for event in events:
        index = position.get(event.cursor, 0)
        position[event.cursor] = index + 1
        event_id = f"evt-{event.cursor}-{index}"
        event_type = EVENT_TYPES[event.event]
        payload = {
            "id": event_id,
            "type": event_type,
            "created_at": event.at.isoformat(),
            "data": event.model_dump(mode="json"),
        }
        deliveries.append(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
            )
        )
    return deliveries


# Sending ------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """A claimed delivery, ready to send without a database session."""

    delivery_id: int
    endpoint_id: int
    url: str
    secret: str = field(repr=False)
    event_id: str
    event_type: str
    body: bytes
    attempt: int


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature header value of a body sent at `timestamp`."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def claim_due(
    session: Session, *, now: datetime, settings: WebhookSettings
) -> list[Attempt]:
    """Claim the deliveries due at `now` and count an attempt for each.

    The claim moves `next_attempt_at` past the send timeout, so another
    dispatcher leaves them alone, and a dispatcher that dies mid-send
    leaves them to be sent again.
    """
    query = (
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
        )
        .order_by(WebhookDelivery.id)
        .limit(settings.batch_size)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=WebhookDelivery, skip_locked=True)
    lease = timedelta(seconds=2 * settings.timeout_seconds)
    attempts = []
    for delivery, endpoint in session.exec(query).all():
        delivery.attempts += 1
        delivery.next_attempt_at = now + lease
        session.add(delivery)
        register_secret(endpoint.secret)
        attempts.append(_attempt(delivery, endpoint))
    session.flush()
    return attempts


def _attempt(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> Attempt:
    body = json.dumps(delivery.payload, ensure_ascii=False, sort_keys=True)
    return Attempt(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        secret=endpoint.secret,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        body=body.encode(),
        attempt=delivery.attempts,
    )


def send(attempt: Attempt, client: httpx.Client) -> tuple[int | None, str]:
    """POST one delivery; return the status code (None without a response) and error."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: attempt.event_id,
        EVENT_TYPE_HEADER: attempt.event_type,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(attempt.secret, timestamp, attempt.body),
    }
    try:
        response = client.post(attempt.url, content=attempt.body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return response.status_code, ""
    return response.status_code, f"answered {response.status_code}"


def record_result(
    session: Session,
    attempt: Attempt,
    status_code: int | None,
    error: str,
    *,
    now: datetime,
    settings: WebhookSettings,
) -> str:
    """Store the outcome of an attempt; return the delivery's new status."""
    delivery = session.get(WebhookDelivery, attempt.delivery_id)
    delivery.last_status_code = status_code
    delivery.last_error = error[:500]
    if not error:
        delivery.status = "delivered"
        delivery.delivered_at = now
    elif delivery.attempts >= settings.max_attempts:
        delivery.status = "failed"
        log.warning(
            "webhook delivery %d (%s) to endpoint %d failed after %d attempts: %s",
            delivery.id,
            delivery.event_id,
            attempt.endpoint_id,
            delivery.attempts,
            error,
        )
    else:
        delay = backoff_seconds(delivery.attempts, settings)
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        log.warning(
            "webhook delivery %d (%s) to endpoint %d, attempt %d: %s; "
            "retrying in %.0f s",
            delivery.id,
            delivery.event_id,
            attempt.endpoint_id,
            delivery.attempts,
            error,
            delay,
        )
    session.add(delivery)
    return delivery.status


def backoff_seconds(attempts: int, settings: WebhookSettings) -> float:
    """Return the wait after the `attempts`-th failed attempt."""
    delay = settings.backoff_seconds * 2 ** (attempts - 1)
    return min(delay, settings.max_backoff_seconds)


# The dispatcher ------------------------------------------------------------------


@dataclass
class RoundReport:
    """Counts of one dispatcher round."""

    queued: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def run_round(
    engine: Engine,
    settings: WebhookSettings,
    *,
    settle_seconds: float = 0.0,
    now: datetime | None = None,
    client: httpx.Client | None = None,
) -> RoundReport:
    """Queue new events, then send every delivery that is due."""
    now = now or utcnow()
    report = RoundReport()
    with session_scope(engine) as session:
        report.queued = enqueue_events(session, settle_seconds=settle_seconds, now=now)
    with session_scope(engine) as session:
        attempts = claim_due(session, now=now, settings=settings)
    if not attempts:
        return report

    own_client = client is None
    client = client or httpx.Client(timeout=settings.timeout_seconds)
    try:
        for attempt in attempts:
            status_code, error = send(attempt, client)
            with session_scope(engine) as session:
                outcome = record_result(
                    session,
                    attempt,
                    status_code,
                    error,
                    now=utcnow(),
                    settings=settings,
                )
            _count(report, outcome)
    finally:
        if own_client:
            client.close()
    return report


def _count(report: RoundReport, outcome: str) -> None:
    if outcome == "delivered":
        report.delivered += 1
    elif outcome == "failed":
        report.failed += 1
    else:
        report.retrying += 1


class WebhookDispatcher:
    """A daemon thread that runs a round every `interval_seconds`."""

    def __init__(
        self, engine: Engine, settings: WebhookSettings, *, settle_seconds: float = 0.0
    ):
        self.engine = engine
        self.settings = settings
        self.settle_seconds = settle_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="cashmatch-webhooks", daemon=True
        )

    def start(self) -> None:
        """Start the thread."""
        log.info(
            "webhook dispatcher started, a round every %.1f s",
            self.settings.interval_seconds,
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for its round to finish."""
        self._stop.set()
        self._thread.join(timeout)
        log.info("webhook dispatcher stopped")

    def _run(self) -> None:
        with httpx.Client(timeout=self.settings.timeout_seconds) as client:
            while not self._stop.wait(self.settings.interval_seconds):
                self._round(client)

    def _round(self, client: httpx.Client) -> None:
        try:
            report = run_round(
                self.engine,
                self.settings,
                settle_seconds=self.settle_seconds,
                client=client,
            )
        except Exception:
            # The next round tries again; a broken round must not end the
            # thread, or deliveries would stop until a restart.
            log.exception("webhook round failed; the next round retries")
            return
        if report.queued or report.delivered or report.retrying or report.failed:
            log.info(
                "webhook round: %d queued, %d delivered, %d retrying, %d failed",
                report.queued,
                report.delivered,
                report.retrying,
                report.failed,
            )


def start_dispatcher(
    engine: Engine, *, settle_seconds: float = 0.0
) -> WebhookDispatcher | None:
    """Start a dispatcher unless CASHMATCH_WEBHOOK_INTERVAL_SECONDS is 0."""
    settings = WebhookSettings()
    if settings.interval_seconds <= 0:
        return None
    dispatcher = WebhookDispatcher(engine, settings, settle_seconds=settle_seconds)
    dispatcher.start()
    return dispatcher
