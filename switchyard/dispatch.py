"""Ways in converge here: record a job in the ledger, then put its message on its queue.

The row is written before the message is sent; if the process dies in between, the reaper's outbox
pass sends it later (``jobs.take_undispatched``), so an accepted job is never lost.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from switchyard import backpressure, constants, egress, events, jobs, task_catalog
from switchyard.errors import InputRefused, InvalidParamsError, UnknownTaskError
from switchyard.jobs import Job, JobStatus

log = logging.getLogger("switchyard.dispatch")


def send(job: Job, *, countdown: float | None = None, producer: Any = None) -> None:
    """Put a recorded job's message on its queue (same id as the ledger row), after ``countdown``
    seconds if given (a retry's backoff). ``producer``: a kombu producer to reuse (a batch's)."""
    from switchyard.celery_app import app

    headers = {constants.HEADER_PRODUCER: job.producer, constants.HEADER_TENANT: job.tenant}
    app.send_task(job.kind, kwargs=job.params, task_id=job.id, queue=job.queue, routing_key=job.queue,
                  headers=headers, countdown=countdown, producer=producer)


def enqueue(
    kind: str,
    params: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    producer: str = "default",
    tenant: str = "default",
    callback_url: str | None = None,
    job_id: str | None = None,
    status: JobStatus = JobStatus.QUEUED,
) -> tuple[Job, bool]:
    """Validate, record and dispatch a job; ``(job, created)``. A repeated idempotency key returns the
    first job and sends nothing. Invalid params raise ``InvalidParamsError`` and record nothing; a full
    queue raises ``QueueFullError`` (switchyard.backpressure)."""
    params = params or {}
    name = admit(kind, params, tenant=tenant, callback_url=callback_url)
    backpressure.check(name)  # QueueFullError past the queue's depth limit
    # The first `status` event's Postgres copy goes in with the row: one durable round trip for both.
    announced = {"status": status.value, "source": producer}
    ts = time.time()
    job, created = jobs.create(name, params, job_id=job_id, status=status, producer=producer,
                               tenant=tenant, idempotency_key=idempotency_key, callback_url=callback_url,
                               first_event=("status", announced, ts))
    if not created:
        return job, False
    events.publish(job.id, "status", announced, first=True, stored=True, ts=ts)
    send(job)
    jobs.mark_dispatched(job.id, wait=False)  # off the producer's path: it rides the ledger writer
    return job, True


def admit(kind: str, params: dict[str, Any], *, tenant: str, callback_url: str | None = None) -> str:
    """The checks every way in makes before recording a job: a known kind, params that fit its schema
    within ``tenant``, a callback URL the egress policy allows. The task's full name; raises
    ``UnknownTaskError`` or ``InvalidParamsError``."""
    spec = task_catalog.get_spec(kind)
    task_catalog.validate_params(spec.name, params, tenant=tenant)
    if callback_url:
        _check_callback(spec.name, callback_url)
    return spec.name


def enqueue_many(items: list[jobs.NewJob], *, producer: str = "default",
                 tenant: str = "default") -> list[tuple[Job, bool]]:
    """Validate, record and dispatch a batch: ``(job, created)`` per item, in order.

    Every item is checked first (``admit``); one invalid item refuses the whole batch with
    ``InvalidParamsError`` whose errors are located ``["jobs", index, ...]``, and nothing is recorded.
    The batch is recorded in one durable commit (``jobs.create_many``), then each new job gets its
    ``status`` event and its message, all sent through one broker connection (Celery publishes one
    message per task; the outbox sweep covers a producer that dies before the last send).
    """
    from switchyard.celery_app import app

    admitted: list[jobs.NewJob] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            name = admit(item.kind, item.params or {}, tenant=tenant, callback_url=item.callback_url)
        except UnknownTaskError as exc:
            errors.append({"loc": ["jobs", index, "kind"], "msg": str(exc), "type": "unknown_kind"})
            continue
        except InvalidParamsError as exc:
            errors.extend({**e, "loc": ["jobs", index, *e.get("loc", ())]} for e in exc.errors)
            continue
        admitted.append(jobs.NewJob(name, item.params or {}, item.idempotency_key, item.callback_url))
    if errors:
        raise InvalidParamsError("batch", errors)
    for name in dict.fromkeys(i.kind for i in admitted):
        backpressure.check(name)
    results = jobs.create_many(admitted, producer=producer, tenant=tenant)
    new = [job for job, created in results if created]
    with app.producer_or_acquire() as kombu_producer:
        for job in new:
            events.publish(job.id, "status", {"status": job.status.value, "source": producer}, first=True)
            send(job, producer=kombu_producer)
    if new:
        jobs.mark_dispatched_many([job.id for job in new])
    return results


def _check_callback(task: str, url: str) -> None:
    """A callback URL must pass the egress policy here, at the way in, as well as when it is called."""
    try:
        egress.check_url(url, resolve=True)
    except InputRefused as exc:
        raise InvalidParamsError(task, [{"loc": ["callback_url"], "msg": str(exc), "type": "egress_refused"}]) from None


def cancel(job_id: str) -> Job:
    """Ask a job to stop. A queued job ends now; a running one stops at its next step boundary
    (within about 100 ms of the request, across processes)."""
    from switchyard.redis_conn import get_redis
    from switchyard.runner import announce_end

    job, ended_now = jobs.request_cancel(job_id)
    if ended_now:
        announce_end(job)
    elif job.status is JobStatus.RUNNING:
        get_redis().set(constants.cancel_key(job_id), "1", ex=7 * 24 * 3600)
    return job
