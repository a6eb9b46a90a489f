"""Signed webhooks: ``POST /hooks/{kind}`` with the task's kwargs as the JSON body.

Checks run cheapest-first and nothing is recorded until all pass: known kind (404), body size while
reading the stream (413, a huge body is never buffered), HMAC signature with timestamp tolerance
(401; also when no secret is configured: unsigned calls are refused, never accepted), JSON (422),
the task's schema (422 with field errors). Then the job is enqueued: 202.

Replay: the signature covers ``"<t>.<body>"``, so an old signature with a new timestamp fails. An
exact replay inside the tolerance window returns the first job, because the signature itself is the
idempotency key when the caller sends no ``Idempotency-Key``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from starlette.concurrency import run_in_threadpool

from switchyard import dispatch, signing, task_catalog
from switchyard.api.errors import ERROR_RESPONSES, APIError, ErrorBody, field_errors
from switchyard.api.jobs import (
    BATCH_MAX,
    IDEMPOTENCY_KEY_MAX,
    BatchAccepted,
    JobAccepted,
    JobCreate,
    accepted,
    enqueue_batch,
)
from switchyard.config import get_settings
from switchyard.errors import InvalidParamsError, SignatureError, UnknownTaskError

log = logging.getLogger("switchyard.api.webhooks")

router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)

SOURCE_HEADER = "Switchyard-Source"
# A source names an environment variable (WEBHOOK_SECRET_<SOURCE>): keep it to a safe alphabet.
_SOURCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, or 413 as soon as it exceeds ``limit`` (declared or actually sent)."""
    too_large = APIError(status.HTTP_413_CONTENT_TOO_LARGE, "payload_too_large",
                         f"body exceeds {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked or lying sender: stop reading here
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _unauthorized(reason: str, source: str | None) -> APIError:
    # The reason names what failed, never the secret or the expected signature.
    log.warning("webhook refused: %s (source %s)", reason, source or "default")
    return APIError(status.HTTP_401_UNAUTHORIZED, "invalid_signature", reason)


def _check_signature(body: bytes, header: str | None, source: str | None) -> None:
    secret = get_settings().webhook_secret_for(source)
    if not secret:
        raise _unauthorized("no webhook secret is configured for this source; unsigned webhooks are "
                            "refused", source)
    try:
        signing.verify(secret, body, header, tolerance_s=get_settings().webhook_tolerance_s)
    except SignatureError as exc:
        raise _unauthorized(str(exc), source) from None


def _replay_key(header: str) -> str:
    # Only a digest of the (already verified) header is stored, so the ledger never holds the MAC.
    return "sig:" + hashlib.sha256(header.encode()).hexdigest()[:40]


def _parse_json(body: bytes) -> dict | list:
    try:
        params = json.loads(body) if body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting too
        raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_json", f"body is not JSON: {exc}",
                       details=[{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}]) from None
    if isinstance(params, list):
        bad = [{"loc": ["body", "jobs", i], "msg": "expected an object", "type": "dict_type"}
               for i, item in enumerate(params) if not isinstance(item, dict)]
        if bad or not 0 < len(params) <= BATCH_MAX:
            raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_params",
                           f"a batch is a JSON array of 1 to {BATCH_MAX} objects (each the task's kwargs)",
                           details=bad or [{"loc": ["body"], "msg": "bad batch length", "type": "too_long"}])
    elif not isinstance(params, dict):
        raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_params",
                       "body must be a JSON object (the task's kwargs) or an array of them (a batch)",
                       details=[{"loc": ["body"], "msg": "expected an object", "type": "dict_type"}])
    return params


async def _batch(request: Request, kind: str, items: list[dict], *, key: str, producer: str,
                 tenant: str) -> BatchAccepted:
    # Item i's idempotency key is the call's key (header or signature digest) and its index, so a replayed
    # batch returns the same jobs, item by item.
    batch = [JobCreate(kind=kind, params=params, idempotency_key=f"{key[:IDEMPOTENCY_KEY_MAX - 8]}#{i}")
             for i, params in enumerate(items)]
    return await run_in_threadpool(enqueue_batch, request, batch, producer=producer, tenant=tenant)


@router.post(
    "/hooks/{kind}", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted | BatchAccepted,
    summary="Trigger a job (or a batch of jobs) by signed webhook",
    description="The body is the task's kwargs (JSON), or a JSON array of them: a batch of jobs of that kind, "
                "recorded in one commit (all or nothing), answered `{\"data\": [...]}`. "
                "`Switchyard-Signature: t=<unix>,v1=<hex "
                "HMAC-SHA256(secret, \"<t>.<raw body>\")>`; the secret is `SWITCHYARD_WEBHOOK_SECRET_"
                "<SOURCE>` for the `Switchyard-Source` header, else `SWITCHYARD_WEBHOOK_SECRET`.",
    responses={401: {"model": ErrorBody, "description": "missing, malformed, stale or wrong signature"},
               404: {"model": ErrorBody, "description": "unknown kind"},
               413: {"model": ErrorBody, "description": "body too large"},
               422: {"model": ErrorBody, "description": "malformed JSON, or parameters that fail the "
                                                       "task's schema"}},
)
async def webhook(
    kind: str, request: Request, response: Response,
    switchyard_signature: Annotated[str | None, Header()] = None,
    switchyard_source: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=IDEMPOTENCY_KEY_MAX)] = None,
) -> JobAccepted | BatchAccepted:
    try:
        task = task_catalog.get_spec(kind)
    except UnknownTaskError:
        raise APIError(status.HTTP_404_NOT_FOUND, "unknown_kind", f"no task {kind!r}") from None
    if switchyard_source is not None and not _SOURCE_RE.match(switchyard_source):
        raise _unauthorized(f"malformed {SOURCE_HEADER} header", None)
    body = await read_limited(request, get_settings().webhook_max_body)
    _check_signature(body, switchyard_signature, switchyard_source)
    params = _parse_json(body)
    producer = f"webhook:{(switchyard_source or 'default').lower()}"
    key = idempotency_key or _replay_key(switchyard_signature or "")
    tenant = get_settings().webhook_tenant_for(switchyard_source)
    if isinstance(params, list):
        return await _batch(request, task.name, params, key=key, producer=producer, tenant=tenant)
    try:
        job, created = await run_in_threadpool(
            dispatch.enqueue, task.name, params, idempotency_key=key, producer=producer, tenant=tenant,
        )
    except InvalidParamsError as exc:
        raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_params",
                       f"invalid parameters for {exc.task}",
                       details=field_errors(exc.errors, ("body",))) from None
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    log.info("job %s (%s) %s by webhook from %s", job.id, job.kind,
             "accepted" if created else "replayed", producer)
    return accepted(request, job, created)
