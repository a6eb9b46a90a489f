"""A job's life in a worker, once for every task: ledger row, validation, claim, lease, events, end.

``run_job`` is broker-agnostic: the Celery tasks call it with the message, and tests can call it
directly. A task's own function only sees its validated parameters and a ``JobContext``; what a pool does
around its jobs (the agent pool takes and gives back a thread) is a named hook (``switchyard/hooks.py``).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kombu.exceptions
import psycopg
import psycopg_pool
import redis.exceptions
from pydantic import BaseModel

from switchyard import events, faults, hooks, jobs, task_catalog
from switchyard.config import get_settings
from switchyard.context import JobContext, lease_keeper, lease_owner, shutting_down
from switchyard.errors import InvalidParamsError, JobCancelled, LeaseLost, WorkerShuttingDown
from switchyard.jobs import Job, JobStatus
from switchyard.logs import current_job_id
from switchyard.secret_params import redact

log = logging.getLogger("switchyard.runner")

JobFunction = Callable[[BaseModel, JobContext], Any]
# Runs before the claim while the job is not yet 'running' (fine-tuning's file validation); raises
# InvalidParamsError to fail the job without it ever reaching 'running'.
PreCheck = Callable[[BaseModel, Job], None]


@dataclass
class Delivery:
    """One delivery of a job message, as the broker handed it over."""

    task: str
    job_id: str
    kwargs: dict[str, Any]
    producer: str = "celery"
    tenant: str = "default"
    idempotency_key: str | None = None
    callback_url: str | None = None
    worker: str | None = None
    # Sends the job's message again (same id and kwargs) to its home queue.
    redeliver: Callable[[], None] = field(default=lambda: None)


def run_job(delivery: Delivery, fn: JobFunction, *, precheck: PreCheck | None = None) -> Any:
    """Run one delivery of a job to its end, or drop it if it is a duplicate. Returns the result."""
    token = current_job_id.set(delivery.job_id)
    try:
        return _run(delivery, fn, precheck)
    finally:
        current_job_id.reset(token)


def _run(delivery: Delivery, fn: JobFunction, precheck: PreCheck | None) -> Any:
    """A delivery in three phases: claim the job, execute it inside its pool's hooks, settle its end."""
    owner = lease_owner()
    claim = _claim(delivery, precheck, owner)
    if claim is None:
        return None  # invalid, a duplicate, or left to another worker
    claimed, params = claim
    outcome = _execute(delivery, fn, params, claimed, owner)
    if outcome is None:
        events.release_held(claimed.id)  # this attempt's `running`, if nothing carried it
        return None  # requeued or the lease lost: another delivery ends the job
    return _settle(claimed, owner, outcome)


@dataclass
class _Outcome:
    status: JobStatus
    result: Any = None
    error: dict[str, Any] | None = None


def _claim(delivery: Delivery, precheck: PreCheck | None, owner: str) -> tuple[Job, Any] | None:
    """Validate the message, run the pool's pre-check, and claim the job: the claimed row and its params,
    or None when this delivery must not run (invalid params end the job here)."""
    worker = delivery.worker or owner
    lease_s = get_settings().lease_s
    try:
        params = task_catalog.validate_params(delivery.task, delivery.kwargs, tenant=delivery.tenant)
    except InvalidParamsError as exc:
        _fail_invalid(delivery, exc)
        return None
    if shutting_down():
        # Delivered while this worker drains for SIGTERM: leave the job to a worker that stays.
        log.info("worker shutting down: job %s goes back to the queue unclaimed", delivery.job_id)
        delivery.redeliver()
        return None
    # The common case, a recorded job with no pre-check, costs one statement: the claim itself.
    claimed = None if precheck is not None else _ledger(jobs.claim, delivery.job_id, owner, worker, lease_s)
    if claimed is None:
        job = _ensure_row(delivery)
        if job is None:
            return None
        if precheck is not None and job.status in (JobStatus.VALIDATING_FILES, JobStatus.QUEUED):
            try:
                precheck(params, job)
            except InvalidParamsError as exc:
                _fail_invalid(delivery, exc)
                return None
            if job.status is JobStatus.VALIDATING_FILES and jobs.set_status(job.id, JobStatus.QUEUED):
                events.publish(job.id, "status", {"status": "queued"})
        claimed = _ledger(jobs.claim, job.id, owner, worker, lease_s)
    if claimed is None:
        current = jobs.find(delivery.job_id)
        log.info("dropping duplicate delivery of job %s (status %s, lease held by %s)", delivery.job_id,
                 current.status if current else None, current.lease_owner if current else None)
        return None
    # Held back for a moment (events.hold): the job's first event carries it to Redis in the same call
    # (a job that emits nothing sends it alone before its finish, _settle); Postgres's copy goes with
    # that call's (for a progress event, it rides this process's next group commit: the job's finish).
    events.hold(claimed.id, "status", {"status": "running", "attempt": claimed.attempts,
                                       "worker": claimed.worker})
    return claimed, params


def _execute(delivery: Delivery, fn: JobFunction, params: Any, claimed: Job, owner: str) -> _Outcome | None:
    """Run the function inside the pool's hooks (switchyard/hooks.py) while the lease is kept; its
    outcome, or None when the job went back to the queue or to another worker."""
    ctx = JobContext(claimed.id, tenant=claimed.tenant, attempt=claimed.attempts, owner=owner,
                     worker=delivery.worker)
    pool_hooks = hooks.bind(delivery.task, params, ctx)  # all of them run before the ledger's end
    lease_keeper().add(claimed.id)
    try:
        pool_hooks.before_run()
        returned = fn(params, ctx)
        pool_hooks.after_run(returned)  # a hook that raises here fails the job: no result is recorded
        return _Outcome(JobStatus.SUCCEEDED, result=returned)
    except JobCancelled as exc:
        pool_hooks.on_cancel(exc)
        return _Outcome(JobStatus.CANCELLED, error={"type": "cancelled", "message": "cancelled on request"})
    except WorkerShuttingDown as exc:
        pool_hooks.on_requeue(exc)
        lease_keeper().remove(claimed.id)
        if jobs.release(claimed.id, owner) is not None:
            events.publish(claimed.id, "status", {"status": "queued", "reason": "worker shutting down"})
            delivery.redeliver()
        return None
    except LeaseLost as exc:
        pool_hooks.on_requeue(exc)
        log.warning("job %s: lease lost to another worker; stopping without writing", claimed.id)
        return None
    except Exception as exc:  # the job's own failure: recorded, never re-raised into Celery
        fault = infra_fault(exc)
        if fault is not None:
            lease_keeper().remove(claimed.id)
            if _retry_after_infra_fault(claimed, owner, fault):
                pool_hooks.on_requeue(exc)
                return None
            log.error("job %s: infrastructure fault and no retries left: %r", claimed.id, fault)
            error = {"type": "infrastructure_error", "message": (
                f"{type(fault).__name__}: {fault} (retried {claimed.infra_retries} times; "
                "limit SWITCHYARD_MAX_INFRA_RETRIES)")}
        else:
            log.exception("job %s failed", claimed.id)
            # An error that explains itself (disk.DiskFullError) gives its own entry, without a traceback.
            error = exc.job_error() if hasattr(exc, "job_error") else {
                "type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc(limit=8)}
        pool_hooks.on_failure(exc)
        return _Outcome(JobStatus.FAILED, error=error)
    finally:
        lease_keeper().remove(claimed.id)


def _settle(claimed: Job, owner: str, outcome: _Outcome) -> Any:
    """Record the end durably, then announce it; the result, or None if the lease was lost first."""
    # A job that emitted nothing still holds its `running`: it goes out before the finish, so a worker
    # killed between the finish and the end (the end repair announces it) leaves a stream that shows
    # the run; its copy is deferred and rides the finish's commit.
    events.release_held(claimed.id)
    ended = _ledger(jobs.finish, claimed.id, owner, outcome.status, result=outcome.result, error=outcome.error)
    if ended is None:
        log.warning("job %s: lease lost before finishing; another worker owns it", claimed.id)
        return None
    faults.kill_point("after_finish")  # tests only: a crash before the end (switchyard/end_repair.py)
    announce_end(ended)
    return outcome.result


# --- infrastructure faults (RELIABILITY.md) -----------------------------------------------------------

# A lost connection to Redis, Postgres or the broker: the job is not at fault, so it is retried.
INFRA_FAULTS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, psycopg.OperationalError,
    psycopg_pool.PoolTimeout, kombu.exceptions.OperationalError,
)
# OperationalError subclasses that are the statement's own doing, not the connection's.
_NOT_INFRA: tuple[type[BaseException], ...] = (psycopg.errors.QueryCanceled,)


def infra_fault(exc: BaseException) -> BaseException | None:
    """The infrastructure fault behind ``exc`` (itself, or a cause it wraps), else ``None``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, INFRA_FAULTS) and not isinstance(current, _NOT_INFRA):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _ledger(write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one of the runner's ledger writes, retrying with backoff while Postgres is unreachable
    (a restart, a failover) for up to ``ledger_retry_s``; then the error propagates and the message,
    acknowledged late, is left to the reaper (the ledger row still says where the job stands)."""
    deadline = time.monotonic() + get_settings().ledger_retry_s
    delay = 0.2
    while True:
        try:
            return write(*args, **kwargs)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            if isinstance(exc, _NOT_INFRA) or time.monotonic() + delay > deadline:
                raise
            log.warning("ledger write %s failed (%s); retrying in %.1fs", write.__name__, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _retry_after_infra_fault(job: Job, owner: str, fault: BaseException) -> bool:
    """Put a job that lost a connection back in the queue and send it again after a backoff. False when
    its infrastructure retries are spent (the caller fails it)."""
    from switchyard.dispatch import send

    settings = get_settings()
    released = _ledger(jobs.release_for_retry, job.id, owner, settings.max_infra_retries)
    if released is None:
        current = _ledger(jobs.find, job.id)
        # Not ours any more (lease lost): nothing to do. Still ours: the retries are spent.
        return not (current is not None and current.status is JobStatus.RUNNING and current.lease_owner == owner)
    if released.status is JobStatus.CANCELLED:  # cancelled while it ran: no retry
        announce_end(released)
        return True
    delay = settings.infra_retry_backoff_s * 2 ** (released.infra_retries - 1)
    log.warning("job %s: infrastructure fault (%s: %s); retry %d/%d in %.1fs", job.id, type(fault).__name__,
                fault, released.infra_retries, settings.max_infra_retries, delay)
    try:
        events.publish(job.id, "status", {"status": "queued", "reason": "infrastructure fault",
                                          "fault": type(fault).__name__, "retry_in": delay})
        send(released, countdown=delay)
    except INFRA_FAULTS as exc:  # still down: the reaper sends it again once it stays unclaimed
        log.warning("job %s: could not send the retry now (%s); the reaper will", job.id, exc)
    return True


def _fail_invalid(delivery: Delivery, exc: InvalidParamsError) -> None:
    """An invalid message fails its own job (recorded if it was not), without reaching 'running'."""
    job = _ensure_row(delivery)
    if job is None:
        return
    error = {"type": "invalid_params", "message": str(exc), "errors": exc.errors}
    ended = jobs.end_unclaimed(job.id, JobStatus.FAILED, error=error)
    if ended is not None:
        log.warning("job %s failed validation: %s", job.id, exc)
        announce_end(ended)


def _ensure_row(delivery: Delivery) -> Job | None:
    """The job's ledger row, created if the message came from a raw producer. ``None`` = drop it."""
    # A raw message refused for carrying a secret is recorded without it (valid params are unchanged).
    job, created = jobs.create(
        delivery.task, redact(delivery.kwargs), job_id=delivery.job_id, producer=delivery.producer,
        tenant=delivery.tenant, idempotency_key=delivery.idempotency_key,
        callback_url=delivery.callback_url,
    )
    if created:
        jobs.mark_dispatched(job.id)
        events.publish(job.id, "status", {"status": "queued", "source": delivery.producer})
    elif job.id != delivery.job_id:
        log.info("message %s repeats idempotency key %r of job %s; dropped", delivery.job_id,
                 delivery.idempotency_key, job.id)
        return None
    return job


def announce_end(job: Job) -> None:
    """The last two events of every job, and its outbound webhook (also used by cancel and the reaper).
    Postgres's copy of the two is written before it returns: readers of the ledger (/metrics, the end
    repair) look for a job's `end` there as soon as the job has ended."""
    data = {"status": job.status.value}
    if job.error:
        data["error"] = job.error
    events.publish_many(job.id, [("status", data), ("end", {**data, "result": job.result})])
    if job.callback_url:
        from switchyard.outbound_webhooks import schedule_callback

        schedule_callback(job)
