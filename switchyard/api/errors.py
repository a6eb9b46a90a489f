"""One JSON error shape for the whole HTTP API, and the mapping of ``switchyard.errors`` to codes.

Every error response is::

    {"error": {"type": "invalid_params", "message": "...", "details": [...]}}

``type`` is a stable machine-readable word, ``message`` is for people, ``details`` (optional) holds
pydantic-style field errors (``loc``, ``msg``, ``type``). The outer ``{"error": {...}}`` with
``type`` and ``message`` is also OpenAI's shape, so the OpenAI-compatible routes can share it.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import psycopg
import psycopg_pool
import redis.exceptions
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from switchyard import errors
from switchyard.disk import DiskFullError

log = logging.getLogger("switchyard.api")

# The error ``type`` for a plain HTTPException, by status code.
_TYPE_FOR_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}

# switchyard's own errors → (HTTP status, error type). Subclasses match through the MRO.
ERROR_MAP: dict[type[Exception], tuple[int, str]] = {
    errors.NotFoundError: (status.HTTP_404_NOT_FOUND, "not_found"),
    errors.UnknownTaskError: (status.HTTP_404_NOT_FOUND, "unknown_kind"),
    errors.InvalidParamsError: (status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_params"),
    errors.SignatureError: (status.HTTP_401_UNAUTHORIZED, "invalid_signature"),
    errors.InputRefused: (status.HTTP_422_UNPROCESSABLE_CONTENT, "input_refused"),
    errors.ConfigurationError: (status.HTTP_503_SERVICE_UNAVAILABLE, "not_configured"),
    errors.QueueFullError: (status.HTTP_429_TOO_MANY_REQUESTS, "queue_full"),
    DiskFullError: (status.HTTP_507_INSUFFICIENT_STORAGE, "insufficient_storage"),
    errors.SwitchyardError: (status.HTTP_500_INTERNAL_SERVER_ERROR, "internal_error"),
}

# A backend (Postgres, Redis, broker) that cannot be reached is the caller's cue to retry later, not a
# bug: 503 with Retry-After. A job may already be recorded, so retries should carry an Idempotency-Key.
BACKEND_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


class ErrorDetail(BaseModel):
    type: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """The one error shape, for OpenAPI."""

    error: ErrorDetail


# For routers: ``APIRouter(responses=ERROR_RESPONSES)`` documents the shape instead of FastAPI's
# default ``HTTPValidationError`` (which this app never sends).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or invalid credentials"},
    404: {"model": ErrorBody, "description": "not found (or another tenant's)"},
    422: {"model": ErrorBody, "description": "invalid request; `details` lists the fields"},
    503: {"model": ErrorBody, "description": "a backend is unavailable; retry"},
}


class APIError(Exception):
    """An error a route raises to answer with the shared shape (``raise APIError(409, "conflict", ...)``)."""

    def __init__(self, status_code: int, type: str, message: str, *, details: list[dict] | None = None,
                 headers: dict[str, str] | None = None):
        self.status_code = status_code
        self.type = type
        self.message = message
        self.details = details
        self.headers = headers
        super().__init__(message)


def error_body(type: str, message: str, details: list[dict] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(status_code: int, type: str, message: str, *, details: list[dict] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(type, message, details), status_code=status_code, headers=headers)


def field_errors(errs: list[dict], prefix: tuple[str | int, ...] = ()) -> list[dict]:
    """pydantic's errors as JSON-safe dicts, each ``loc`` prefixed (``("body", "params")``)."""
    out = []
    for err in errs:
        item = {"loc": [*prefix, *err.get("loc", ())], "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "value_error"))}
        out.append(item)
    return out


def from_switchyard_error(exc: errors.SwitchyardError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_MAP:
            return ERROR_MAP[cls]
    return ERROR_MAP[errors.SwitchyardError]


# --- handlers ---------------------------------------------------------------------------------------

async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(exc.status_code, exc.type, exc.message, details=exc.details, headers=exc.headers)


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = getattr(exc, "headers", None)
    if isinstance(exc.detail, dict) and "error" in exc.detail:  # a route that built the shape itself
        return JSONResponse(exc.detail, status_code=exc.status_code, headers=headers)
    type_ = _TYPE_FOR_STATUS.get(exc.status_code, "error")
    if isinstance(exc.detail, str):
        message = exc.detail
    elif isinstance(exc.detail, dict):
        message = str(exc.detail.get("message") or exc.detail)
    else:
        message = type_.replace("_", " ")
    details = exc.detail if isinstance(exc.detail, list) else None
    return error_response(exc.status_code, type_, message, details=details, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = field_errors(list(exc.errors()))
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_request",
                          "the request does not match its schema", details=details)


async def _switchyard_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.SwitchyardError)
    code, type_ = from_switchyard_error(exc)
    details = None
    message = str(exc)
    if isinstance(exc, errors.InvalidParamsError):
        details = field_errors(exc.errors, ("body", "params"))
        message = f"invalid parameters for {exc.task}"
    elif isinstance(exc, errors.JobNotFoundError):
        message = f"no job {exc}"
    if code >= 500:
        log.error("%s: %s", type(exc).__name__, exc)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.QueueFullError) else None
    return error_response(code, type_, message, details=details, headers=headers)


async def _backend_error(_request: Request, exc: Exception) -> JSONResponse:
    # The exception text can carry a host name but never a password (URLs are not echoed by
    # psycopg, redis-py or kombu); still, only the class goes to the client.
    log.error("backend unavailable: %s: %s", type(exc).__name__, exc)
    return error_response(status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable",
                          f"a backend is unavailable ({type(exc).__name__}); retry later",
                          headers={"Retry-After": "5"})


async def _data_error(_request: Request, exc: Exception) -> JSONResponse:
    # SQLSTATE class 22 ("data exception"): a value the caller sent that Postgres cannot hold (a NUL
    # character in text or JSON, an out-of-range number). The caller's input, not a server fault.
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_request",
                          f"the request holds a value the database cannot store ({type(exc).__name__}; "
                          "e.g. a NUL character)")


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette still re-raises it after this, so the server logs the traceback; the client gets
    # the shape without internals.
    return error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal_error",
                          f"internal error ({type(exc).__name__})")


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` in the shared shape. ``create_app`` calls this (via ``jobs``)."""
    if getattr(app.state, "switchyard_errors_installed", False):
        return
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(errors.SwitchyardError, _switchyard_error)
    for exc_class in BACKEND_ERRORS:
        app.add_exception_handler(exc_class, _backend_error)
    app.add_exception_handler(psycopg.errors.DataError, _data_error)
    app.add_exception_handler(Exception, _unexpected)
    app.state.switchyard_errors_installed = True
