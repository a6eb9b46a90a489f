"""jobs.py against the real database: idempotent create, one lease at a time, owner-guarded finish."""

from __future__ import annotations

import uuid

from switchyard import jobs
from switchyard.jobs import JobStatus

PING = "switchyard.control.ping"


def test_create_is_idempotent_per_producer_key(stack):
    key = uuid.uuid4().hex
    first, created = jobs.create(PING, {"seconds": 0}, idempotency_key=key, producer="p1", tenant="t1")
    again, created_again = jobs.create(PING, {"seconds": 5}, idempotency_key=key, producer="p1", tenant="t1")
    assert created and not created_again and again.id == first.id and again.params == {"seconds": 0}
    other, created_other = jobs.create(PING, {}, idempotency_key=key, producer="p2")
    assert created_other and other.id != first.id
    assert (first.status, first.tenant) == (JobStatus.QUEUED, "t1")


def test_one_owner_holds_the_lease_and_only_it_finishes(stack):
    job, _ = jobs.create(PING, {})
    claimed = jobs.claim(job.id, "owner-a", "worker-a", 30)
    assert claimed.status is JobStatus.RUNNING and claimed.attempts == 1 and claimed.lease_owner == "owner-a"
    assert jobs.claim(job.id, "owner-b", "worker-b", 30) is None  # the lease is live
    assert jobs.finish(job.id, "owner-b", JobStatus.SUCCEEDED, result={"x": 1}) is None
    done = jobs.finish(job.id, "owner-a", JobStatus.SUCCEEDED, result={"x": 1})
    assert done.status is JobStatus.SUCCEEDED and done.result == {"x": 1} and done.finished_at is not None
    assert jobs.claim(job.id, "owner-a", "worker-a", 30) is None  # an ended job is never claimed again


def test_cancel_of_a_queued_job_ends_it(stack):
    job, _ = jobs.create(PING, {})
    cancelled, changed = jobs.request_cancel(job.id)
    assert changed and cancelled.status is JobStatus.CANCELLED
    assert jobs.get(job.id).status is JobStatus.CANCELLED
