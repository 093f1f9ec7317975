"""Log output of the service: JSON lines or plain text, with request ids.

`CASHMATCH_LOG_FORMAT=json` writes one JSON object per line (time, level,
logger, message, request_id and any `extra` fields); anything else writes
plain text. Both formats pass every line through `redact`, which removes
API keys, secrets registered with `register_secret`, SQL parameters and
`password=...` values, and masks account numbers. Secrets in other shapes
are the caller's to keep out of log messages.

`RequestIdMiddleware` gives each HTTP request an id: the client's
`X-Request-ID` when it is well formed, else a new one. The id is echoed in
the response header and added to every log line written for the request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.masking import mask_account_numbers

FORMAT_VARIABLE = "CASHMATCH_LOG_FORMAT"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
SERVICE_LOGGERS = ("cashmatch", "uvicorn", "uvicorn.error", "uvicorn.access")

# API keys are "cm_" and 43 URL-safe characters. The first ten characters
# are the key's public prefix, which `cashmatch keys list` shows too.
API_KEY = re.compile(r"\b(cm_[A-Za-z0-9_-]{7})[A-Za-z0-9_-]+")
SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\s*(\(|$))", re.DOTALL)
SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(password|passwd|secret|token|api[_-]?key)(\s*[=:]\s*)(\S+)"
)
STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
) | {"message", "asctime", "request_id"}

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()

log = logging.getLogger("cashmatch.service")


def register_secret(value: str | None) -> None:
    """Remove this exact value from every later log line of this process."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return log text without secrets and with account numbers masked."""
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "[secret]")
    text = API_KEY.sub(r"\1[key]", text)
    text = SQL_PARAMETERS.sub("[parameters: hidden]", text)
    text = SECRET_ASSIGNMENT.sub(r"\1\2[secret]", text)
    return mask_account_numbers(text)


class RequestIdFilter(logging.Filter):
    """Add the current request's id, or "-", to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return True


class TextFormatter(logging.Formatter):
    """Plain text lines, redacted."""

    def __init__(self, fmt: str = TEXT_FORMAT, **kwargs: Any):
        super().__init__(fmt, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        RequestIdFilter().filter(record)
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, every text value redacted."""

    def format(self, record: logging.LogRecord) -> str:
        RequestIdFilter().filter(record)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": record.request_id,
        }
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(_redacted(entry), ensure_ascii=False, default=str)


def _redacted(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(item) for item in value]
    return value


def log_format(value: str | None = None) -> str:
    """Return "json" or "text", from `value` or CASHMATCH_LOG_FORMAT."""
    chosen = (value or os.environ.get(FORMAT_VARIABLE, "text")).strip().lower()
    return "json" if chosen == "json" else "text"


def make_formatter(fmt: str | None = None) -> logging.Formatter:
    """Return the formatter for a log format name."""
    return JsonFormatter() if log_format(fmt) == "json" else TextFormatter()


class StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever `sys.stderr` is at the time.

    Test runners and embedding programs swap `sys.stderr`; a handler that
    kept the stream of its creation would write to a closed file.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        del value


def configure_logging(
    level: int = logging.INFO, *, fmt: str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Send the `cashmatch` loggers to stderr (or `stream`) in the chosen format.

    Replaces the handlers the `cashmatch` logger had, so calling it twice
    does not write each line twice. Returns the new handler.
    """
    handler = logging.StreamHandler(stream) if stream else StderrHandler()
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger("cashmatch")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def uvicorn_log_config(level: str = "INFO", fmt: str | None = None) -> dict:
    """Return a `logging.config.dictConfig` for uvicorn and its workers.

    uvicorn applies it in every worker process, so `cashmatch serve
    --workers 2` writes the same format from each worker.
    """
    formatter = "json" if log_format(fmt) == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": f"{__name__}.JsonFormatter"},
            "text": {"()": f"{__name__}.TextFormatter"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": formatter,
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: {"handlers": ["default"], "level": level, "propagate": False}
            for name in SERVICE_LOGGERS
        },
    }


def new_request_id() -> str:
    """Return a fresh request id."""
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """ASGI middleware: a request id per request, echoed and logged.

    A response with status 400 or more is logged at WARNING with the
    method, path, status and the caller's key prefix. An exception that
    escapes the app is logged at ERROR with its traceback, and the 500
    error body is sent from here, so that response carries the id too.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        status: list[int] = []

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.error(
                "%s %s failed: %s",
                scope.get("method"),
                scope.get("path"),
                exc,
                exc_info=exc,
                extra={"key_prefix": _key_prefix(scope)},
            )
            if status:
                raise
            await _internal_error(request_id)(scope, receive, send_with_id)
            return
        finally:
            request_id_var.reset(token)
        if status and status[0] >= 400:
            _log_failed_request(scope, status[0], request_id)


def _internal_error(request_id: str) -> JSONResponse:
    detail = f"internal error; see the server log for request {request_id}"
    return JSONResponse({"detail": detail, "code": "internal_error"}, 500)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if REQUEST_ID.match(text):
                return text
            break
    return new_request_id()


def _log_failed_request(scope: Scope, status: int, request_id: str) -> None:
    level = logging.ERROR if status >= 500 else logging.WARNING
    log.log(
        level,
        "request failed: %s %s returned %d",
        scope.get("method", "-"),
        scope.get("path", "-"),
        status,
        extra={
            "request_id": request_id,
            "status": status,
            "method": scope.get("method"),
            "path": scope.get("path"),
            "key_prefix": _key_prefix(scope),
        },
    )


def _key_prefix(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name in (b"x-api-key", b"authorization"):
            text = value.decode("latin-1").removeprefix("Bearer ").strip()
            match = API_KEY.match(text)
            return match.group(1) if match else None
    return None
