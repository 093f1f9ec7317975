"""Error responses: every error is `{"detail": ..., "code": ...}`.

Domain errors map to the status a client can act on: 404 for a missing
record, 409 for a conflict with a concurrent change, 422 for input that can
never be booked as given. An unexpected error is logged with its traceback
and returned as a 500 that shows no internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.errors import (
    AllocationConflict,
    CashmatchError,
    ImportFormatError,
    ModelNotReady,
)
from service.accounts import AccountSetupConflict, InvalidAccountSetup
from service.auth import AuthError
from service.booking import InvalidAllocation
from service.explain import AmbiguousLineRef, LineNotFound
from service.idempotency import IdempotencyKeyError
from service.master import (
    OrderCustomerConflict,
    OrderOverAllocation,
    UnknownCustomer,
)
from service.review import ReviewConflict, TaskNotFound
from service.voiding import BatchAlreadyVoided, BatchNotFound, InvalidVoid
from service.webhooks import InvalidWebhook, WebhookNotFound

log = logging.getLogger("cashmatch.service")

REPLAY_HEADER = "Idempotent-Replayed"
# Room for multipart boundaries and form fields around an uploaded file.
MULTIPART_SLACK = 64 * 1024

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}

DOMAIN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (LineNotFound, 404, "line_not_found"),
    (AmbiguousLineRef, 409, "ambiguous_line_ref"),
    (BatchNotFound, 404, "batch_not_found"),
    (BatchAlreadyVoided, 409, "batch_already_voided"),
    (InvalidVoid, 422, "invalid_void"),
    (TaskNotFound, 404, "task_not_found"),
    (AllocationConflict, 409, "allocation_conflict"),
    (ReviewConflict, 409, "review_conflict"),
    (InvalidAllocation, 422, "invalid_allocation"),
    (ImportFormatError, 422, "invalid_file"),
    (InvalidAccountSetup, 422, "invalid_account_setup"),
    (AccountSetupConflict, 409, "account_setup_conflict"),
    (UnknownCustomer, 422, "unknown_customer"),
    (OrderCustomerConflict, 409, "order_customer_conflict"),
    (OrderOverAllocation, 409, "order_over_allocation"),
    (IdempotencyKeyError, 422, "idempotency_key_reused"),
    (AuthError, 422, "invalid_user"),
    (ModelNotReady, 503, "model_not_ready"),
    (WebhookNotFound, 404, "webhook_not_found"),
    (InvalidWebhook, 422, "invalid_webhook"),
    (CashmatchError, 400, "bad_request"),
]


class ApiError(Exception):
    """An error with its HTTP status and code, raised by the API layer."""

    def __init__(self, status_code: int, code: str, detail):
        super().__init__(detail)
        self.status_code = status_code
        self.code = code
        self.detail = detail


class Replayed(Exception):
    """The stored first response of a retried write."""

    def __init__(self, status_code: int, body):
        super().__init__(status_code)
        self.status_code = status_code
        self.body = body


def error_response(status_code: int, code: str, detail, headers=None) -> JSONResponse:
    """Return the JSON error body with its status."""
    return JSONResponse({"detail": detail, "code": code}, status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Replayed, _replayed)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _data_error)
    for error_type, _, _ in DOMAIN_ERRORS:
        app.add_exception_handler(error_type, _domain_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status_code, exc.code, exc.detail)


async def _replayed(request: Request, exc: Replayed) -> JSONResponse:
    return JSONResponse(exc.body, exc.status_code, headers={REPLAY_HEADER: "true"})


async def _validation_error(
    request: Request, exc: RequestValidationError
) -> JSONResponse:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(400, "invalid_json", "request body is not valid JSON")
    problems = [_problem(error) for error in errors]
    return error_response(422, "invalid_request", problems)


def _problem(error: dict) -> dict:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return {"field": where, "message": error.get("msg", "invalid")}


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = STATUS_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, exc.detail, headers=exc.headers)


async def _data_error(request: Request, exc: DataError) -> JSONResponse:
    # The database rejects values such as text with NUL characters, which
    # pass request validation; they are bad input, not a server fault.
    reason = str(exc.orig).splitlines()[0] if exc.orig else "invalid value"
    log.warning(
        "%s %s: database rejected a value: %s", request.method, request.url.path, reason
    )
    return error_response(
        422, "invalid_value", f"a value in the request cannot be stored: {reason}"
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    for error_type, status_code, code in DOMAIN_ERRORS:
        if isinstance(exc, error_type):
            return error_response(status_code, code, str(exc))
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return error_response(500, "internal_error", "internal error; see the server log")


class BodySizeLimit:
    """ASGI middleware that returns 413 for a body declared too large.

    It reads the Content-Length header only. The upload route also checks
    the bytes it reads, which covers chunked uploads without that header.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes + MULTIPART_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = _content_length(scope)
            if length is not None and length > self.max_bytes:
                response = error_response(
                    413,
                    "payload_too_large",
                    f"request body of {length} bytes is larger than the "
                    f"{self.max_bytes - MULTIPART_SLACK} bytes allowed "
                    "(CASHMATCH_MAX_UPLOAD_BYTES); split the file",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ReferencePagePolicy:
    """ASGI middleware that keeps the API reference pages on this server.

    ReDoc's script shows a logo from its maker's CDN. The policy allows
    images from this server only, so the browser blocks that request and
    the script leaves the logo out.
    """

    POLICY = (b"content-security-policy", b"img-src 'self' data:; connect-src 'self'")

    def __init__(self, app: ASGIApp, paths: tuple[str, ...]):
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.POLICY]
            await send(message)

        await self.app(scope, receive, send_with_policy)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
