"""The control pool's work: the ``ping`` health probe and the lease reaper."""

from __future__ import annotations

import logging
import os
import socket
import time

from pydantic import BaseModel, ConfigDict, Field

from switchyard import events, jobs
from switchyard.context import JobContext
from switchyard.jobs import JobStatus

log = logging.getLogger("switchyard.housekeeping")


class PingParams(BaseModel):
    """kwargs of ``switchyard.control.ping``."""

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=0, ge=0, le=86_400, description="how long to work, heartbeating")


def ping(params: PingParams, ctx: JobContext) -> dict:
    """Report where it runs, then work for ``seconds``, emitting progress about twice a second."""
    where = {"hostname": socket.gethostname(), "pid": os.getpid(), "worker": ctx.worker,
             "attempt": ctx.attempt}
    ctx.progress(0, params.seconds or None, **where)
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < params.seconds:
        ctx.sleep(min(0.5, params.seconds - elapsed))
        ctx.progress(round(min(time.monotonic() - started, params.seconds), 3), params.seconds, **where)
    return {**where, "seconds": params.seconds}


def reap() -> dict:
    """Fail jobs that started too often, requeue jobs whose lease expired, dispatch jobs whose message
    was never sent, send again queued jobs nobody claimed in time, and announce the lost end of jobs
    whose worker died after finishing them (RELIABILITY.md)."""
    from switchyard.config import get_settings
    from switchyard.dispatch import send
    from switchyard.runner import announce_end

    settings = get_settings()
    exhausted = 0
    for job in jobs.fail_exhausted(settings.max_attempts):
        log.error("job %s: started %d times, its worker died each time; failed (too_many_attempts)",
                  job.id, job.attempts)
        announce_end(job)
        exhausted += 1
    requeued = 0
    for job in jobs.requeue_expired():
        if job.status is JobStatus.CANCELLED:
            announce_end(job)
            continue
        log.warning("job %s: lease of %s expired; requeued (attempt %d)", job.id, job.worker, job.attempts)
        events.publish(job.id, "status", {"status": "queued", "reason": "lease expired",
                                          "previous_worker": job.worker})
        send(job)
        requeued += 1
    dispatched = 0
    for job in jobs.take_undispatched(settings.dispatch_grace_s):
        log.warning("job %s was never dispatched; sending it now", job.id)
        send(job)
        dispatched += 1
    resent = 0
    for job in jobs.take_stale_queued(settings.requeue_after_s):
        # Its message may have died with the broker; a duplicate is dropped by the claim.
        log.warning("job %s queued unclaimed since %s; sending it again (re-send %d)", job.id,
                    job.updated_at.isoformat(), job.redispatches)
        send(job)
        resent += 1
    # Jobs final in the ledger whose end was never published (their worker died in between).
    from switchyard.end_repair import repair_missing_ends

    ends = repair_missing_ends()
    return {"requeued": requeued, "dispatched": dispatched, "resent": resent, "exhausted": exhausted,
            "ends_repaired": ends}
