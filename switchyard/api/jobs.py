"""Jobs over HTTP: submit, list, read, cancel, and follow a job's events as Server-Sent Events.

Routes are glue: the ledger (``switchyard.jobs``), ``switchyard.dispatch`` and ``switchyard.events``
do the work. Every route is behind ``current_tenant``; another tenant's job answers 404, exactly as
a job that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from switchyard import dispatch, events, jobs, task_catalog
from switchyard.api.auth import current_tenant
from switchyard.api.errors import ERROR_RESPONSES, APIError, field_errors
from switchyard.api.errors import install as install  # create_app installs the error handlers via us
from switchyard.api.sse import EventStream
from switchyard.errors import InvalidParamsError, UnknownTaskError
from switchyard.jobs import Job, JobStatus

log = logging.getLogger("switchyard.api.jobs")

router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)

Tenant = Annotated[str, Depends(current_tenant)]

IDEMPOTENCY_KEY_MAX = 255


class JobCreate(BaseModel):
    """``POST /jobs``: a job to run."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="task name, with or without `switchyard.` (`control.ping`)",
                      examples=["control.ping"])
    params: dict[str, Any] = Field(default_factory=dict, description="the task's kwargs")
    idempotency_key: str | None = Field(default=None, max_length=IDEMPOTENCY_KEY_MAX,
                                        description="a repeat with the same key returns the first job")
    callback_url: AnyHttpUrl | None = Field(default=None, description="POSTed (signed) when the job ends")


class JobAccepted(BaseModel):
    job_id: str
    status: str
    created: bool = Field(description="false when an idempotency key returned an existing job")
    status_url: str
    events_url: str


class JobList(BaseModel):
    data: list[dict[str, Any]]
    next_before: float | None = Field(description="pass as `before` for the next (older) page")


def accepted(request: Request, job: Job, created: bool) -> JobAccepted:
    """The 202 body every way in over HTTP answers with (also used by ``/hooks``)."""
    return JobAccepted(
        job_id=job.id, status=job.status.value, created=created,
        status_url=str(request.url_for("get_job", job_id=job.id)),
        events_url=str(request.url_for("job_events", job_id=job.id)),
    )


def tenant_job(job_id: str, tenant: str) -> Job:
    """The job if it belongs to ``tenant``; 404 otherwise (whether absent or someone else's)."""
    job = jobs.find(job_id)
    if job is None or job.tenant != tenant:
        raise APIError(status.HTTP_404_NOT_FOUND, "not_found", f"no job {job_id}")
    return job


def _idempotency_key(body_key: str | None, header_key: str | None) -> str | None:
    if body_key and header_key and body_key != header_key:
        raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_request",
                       "the Idempotency-Key header and body idempotency_key differ")
    return body_key or header_key


@router.post("/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted,
             summary="Submit a job")
def create_job(
    request: Request, response: Response, tenant: Tenant, spec: Annotated[JobCreate, Body()],
    idempotency_key: Annotated[str | None, Header(max_length=IDEMPOTENCY_KEY_MAX)] = None,
) -> JobAccepted:
    key = _idempotency_key(spec.idempotency_key, idempotency_key)
    try:
        task = task_catalog.get_spec(spec.kind)
    except UnknownTaskError as exc:
        raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "unknown_kind", str(exc),
                       details=[{"loc": ["body", "kind"], "msg": "unknown task", "type": "unknown_kind"}],
                       ) from None
    # Idempotency is per producer; one producer per tenant, so tenants cannot collide. Invalid params
    # (InvalidParamsError) are answered 422 by the one handler in switchyard/api/errors.py.
    job, created = dispatch.enqueue(
        task.name, spec.params, idempotency_key=key, producer=f"api:{tenant}", tenant=tenant,
        callback_url=str(spec.callback_url) if spec.callback_url else None,
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    log.info("job %s (%s) %s via API for tenant %s", job.id, job.kind,
             "accepted" if created else "replayed", tenant)
    return accepted(request, job, created)


BATCH_MAX = 1000


class JobBatch(BaseModel):
    """``POST /jobs:batch``: many jobs, recorded in one commit."""

    model_config = ConfigDict(extra="forbid")
    jobs: list[JobCreate] = Field(min_length=1, max_length=BATCH_MAX)


class BatchAccepted(BaseModel):
    data: list[JobAccepted] = Field(description="one per item, in order")


def enqueue_batch(request: Request, items: list[JobCreate], *, producer: str, tenant: str) -> BatchAccepted:
    """Record and dispatch a batch (``dispatch.enqueue_many``); one invalid item refuses it all (422, errors
    located ``["body", "jobs", index, ...]``). Shared by ``POST /jobs:batch`` and the batch webhook."""
    batch = [jobs.NewJob(i.kind, i.params, i.idempotency_key, str(i.callback_url) if i.callback_url else None)
             for i in items]
    try:
        results = dispatch.enqueue_many(batch, producer=producer, tenant=tenant)
    except InvalidParamsError as exc:
        raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_params", "invalid jobs in the batch",
                       details=field_errors(exc.errors, ("body",))) from None
    log.info("batch of %d jobs (%d new) from %s", len(results), sum(c for _j, c in results), producer)
    return BatchAccepted(data=[accepted(request, job, created) for job, created in results])


# A literal path: "/jobs:batch" has no slash after "jobs", so it never matches "/jobs/{job_id}".
@router.post("/jobs:batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchAccepted,
             summary="Submit many jobs in one commit")
def create_jobs_batch(request: Request, tenant: Tenant, body: Annotated[JobBatch, Body()]) -> BatchAccepted:
    # The same producer as POST /jobs: an idempotency key means the same job whichever route carried it.
    return enqueue_batch(request, body.jobs, producer=f"api:{tenant}", tenant=tenant)


@router.get("/jobs", response_model=JobList, summary="List jobs, newest first")
def list_jobs(
    tenant: Tenant,
    kind: Annotated[str | None, Query(description="task name, with or without `switchyard.`")] = None,
    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    # Bounded to what a datetime can hold (year 9999), so any float a client sends is a 422, not a 500.
    before: Annotated[float | None, Query(ge=0, le=253_402_300_799,
                                          description="unix time: only jobs created before it")] = None,
) -> JobList:
    if kind is not None:
        try:
            kind = task_catalog.get_spec(kind).name
        except UnknownTaskError:
            kind = kind if kind.startswith("switchyard.") else f"switchyard.{kind}"  # none will match
    rows = jobs.list_jobs(
        kind=kind, status=job_status.value if job_status else None, tenant=tenant, limit=limit,
        before=datetime.fromtimestamp(before, tz=UTC) if before is not None else None,
    )
    next_before = rows[-1].created_at.timestamp() if len(rows) == limit else None
    return JobList(data=[j.to_dict() for j in rows], next_before=next_before)


@router.get("/jobs/{job_id}", summary="A job's ledger record")
def get_job(job_id: str, tenant: Tenant) -> dict[str, Any]:
    return tenant_job(job_id, tenant).to_dict()


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job",
             description="A queued job ends `cancelled` at once; a running one stops at its next step "
                         "boundary (`cancel_requested` is true until it has). 409 if it already "
                         "succeeded or failed.")
def cancel_job(job_id: str, tenant: Tenant) -> dict[str, Any]:
    job = tenant_job(job_id, tenant)
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise APIError(status.HTTP_409_CONFLICT, "conflict", f"job {job_id} already {job.status.value}")
    return dispatch.cancel(job.id).to_dict()


# --- events (SSE) -----------------------------------------------------------------------------------

def _resume_point(last_event_id: str | None, after: int | None) -> int:
    # An EventSource that reconnects sends Last-Event-ID but keeps the URL it started with, so the
    # header (newer) wins over ?after= (older).
    if last_event_id is not None and last_event_id.strip():
        try:
            value = int(last_event_id)
        except ValueError:
            raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_request",
                           "Last-Event-ID must be an event seq (an integer)",
                           details=[{"loc": ["header", "last-event-id"], "msg": "not an integer",
                                     "type": "int_parsing"}]) from None
        if value < 0:
            raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_request",
                           "Last-Event-ID must not be negative")
        return value
    return after or 0


async def _event_stream(job_id: str, after_seq: int) -> AsyncIterator[dict[str, str]]:
    """The job's events as SSE fields, from ``events.asubscribe`` (asyncio: no thread per stream).

    When the client goes away, sse-starlette cancels this generator, and the subscription's Redis
    connection is released at once.
    """
    async for event in events.asubscribe(job_id, after_seq):
        yield event.to_sse()


@router.get(
    "/jobs/{job_id}/events", summary="Follow a job's events (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "one SSE per event: `id` = seq, `event` = type, `data` = the event "
                                    "JSON; the stream ends after the `end` event"},
               204: {"description": "the job has ended and the client has seen every event"}},
)
def job_events(
    job_id: str, tenant: Tenant,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, description="resume after this seq")] = None,
) -> Response:
    job = tenant_job(job_id, tenant)
    after_seq = _resume_point(last_event_id, after)
    if job.status.is_terminal and not events.replay(job.id, after_seq):
        # Nothing left and nothing will come. 204 also tells an EventSource to stop reconnecting.
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    # A client that stops reading is dropped after SSE_SEND_TIMEOUT_S (switchyard/api/sse.py).
    return EventStream(_event_stream(job.id, after_seq))
