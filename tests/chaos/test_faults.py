"""The platform under faults other than a dead worker (RELIABILITY.md): lost messages, lost connections,
full queues, workers that keep dying.

The first tests run on the session's stack and call the runner and the reaper directly; the last ones get
a private stack (tests/chaos/_soak.py) whose Redis and Postgres they kill and restart.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis.exceptions

from switchyard import events, housekeeping, jobs
from switchyard.config import reload_settings
from switchyard.db import connection
from switchyard.errors import QueueFullError
from switchyard.jobs import JobStatus
from switchyard.runner import Delivery, infra_fault, run_job

pytestmark = pytest.mark.chaos


@pytest.fixture
def settings_env(monkeypatch, stack):
    """Set SWITCHYARD_* variables for this test process only; settings re-read before and after."""

    def apply(**values: str):
        for key, value in values.items():
            monkeypatch.setenv(f"SWITCHYARD_{key}", value)
        return reload_settings()

    yield apply
    monkeypatch.undo()
    reload_settings()


def _recorded(kind: str = "switchyard.control.ping", params: dict | None = None) -> jobs.Job:
    job, _ = jobs.create(kind, params or {"seconds": 0})
    return job


def _sql(statement: str, *args) -> None:
    with connection() as conn:
        conn.execute(statement, args)


def test_a_queued_job_whose_message_is_gone_is_sent_again_once(stack, control_worker, settings_env):
    settings_env(REQUEUE_AFTER_S="5")
    job = _recorded()
    # Sent 30 s ago, never claimed: its message died with the broker. (30 s: past our 5 s delay, short
    # of the 60 s of the session's own reaper, which must not take it first.)
    _sql("UPDATE jobs SET dispatched_at = now() - interval '30 seconds' WHERE id = %s", job.id)
    results: list[list[jobs.Job]] = []
    racers = [threading.Thread(target=lambda: results.append(jobs.take_stale_queued(5))) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    taken = [j for batch in results for j in batch if j.id == job.id]
    assert len(taken) == 1 and taken[0].redispatches == 1  # two reapers never both re-send it
    assert not [j for j in jobs.take_stale_queued(5) if j.id == job.id]  # not again before the delay
    _sql("UPDATE jobs SET dispatched_at = now() - interval '30 seconds' WHERE id = %s", job.id)
    assert housekeeping.reap()["resent"] >= 1  # through dispatch.send, to the live control worker
    final = _wait_final(job.id)
    assert final.status is JobStatus.SUCCEEDED and final.redispatches == 2


def _wait_final(job_id: str, timeout: float = 60) -> jobs.Job:
    for event in events.subscribe(job_id, timeout=timeout):
        if event.is_end:
            break
    return jobs.get(job_id)


def _delivery(job: jobs.Job) -> Delivery:
    return Delivery(task=job.kind, job_id=job.id, kwargs=job.params, worker="fault-test")


def test_a_lost_connection_is_a_retry_and_the_task_own_error_a_failure(stack, settings_env):
    # A long backoff keeps the re-sent message away from any control worker while we look.
    settings_env(MAX_INFRA_RETRIES="1", INFRA_RETRY_BACKOFF_S="600", REQUEUE_AFTER_S="3600")

    def lost_redis(_params, _ctx):
        raise RuntimeError("step failed") from redis.exceptions.ConnectionError("Connection refused")

    job = _recorded()
    assert run_job(_delivery(job), lost_redis) is None
    row = jobs.get(job.id)
    assert (row.status, row.attempts, row.infra_retries) == (JobStatus.QUEUED, 1, 1)
    queued = [e.data for e in events.replay(job.id) if e.type == "status"][-1]
    assert queued["reason"] == "infrastructure fault" and queued["fault"] == "ConnectionError"

    run_job(_delivery(job), lost_redis)  # the retry meets the fault again: retries spent
    row = jobs.get(job.id)
    assert row.status is JobStatus.FAILED and row.attempts == 2
    assert row.error["type"] == "infrastructure_error" and "ConnectionError" in row.error["message"]

    def own_bug(_params, _ctx):
        raise ValueError("bad input")

    job = _recorded()
    run_job(_delivery(job), own_bug)
    row = jobs.get(job.id)
    assert row.status is JobStatus.FAILED and row.error["type"] == "ValueError" and row.infra_retries == 0


def test_infra_fault_classification():
    import kombu.exceptions
    import psycopg

    assert infra_fault(psycopg.OperationalError("server closed the connection")) is not None
    assert infra_fault(kombu.exceptions.OperationalError("broker gone")) is not None
    assert infra_fault(redis.exceptions.TimeoutError()) is not None
    assert infra_fault(psycopg.errors.QueryCanceled("statement timeout")) is None
    assert infra_fault(ValueError("x")) is None
    assert infra_fault(redis.exceptions.ResponseError("WRONGTYPE")) is None


def test_a_job_started_too_often_fails_instead_of_looping(stack, settings_env):
    settings_env(MAX_ATTEMPTS="2")
    # A kind no worker consumes: the session's reaper may requeue and re-send it between our claims, but
    # nobody else claims it.
    job = _recorded("switchyard.faulttest.noop")
    owner = f"dead-{uuid.uuid4().hex[:6]}"
    for _ in range(2):  # claimed, then its worker killed (lease expires): twice
        assert jobs.claim(job.id, owner, "w", 0.01) is not None
        time.sleep(0.05)
    assert jobs.claim(job.id, owner, "w", 0.01) is None  # a third start is refused
    failed = [j for j in jobs.fail_exhausted(2) if j.id == job.id]
    assert failed and failed[0].status is JobStatus.FAILED
    assert failed[0].error["type"] == "too_many_attempts" and failed[0].error["attempts"] == 2
    assert failed[0].lease_owner is None


def test_a_full_queue_refuses_new_jobs_with_429(stack, settings_env):
    import asyncio

    from switchyard import dispatch
    from switchyard.api.errors import _switchyard_error

    kinds = ["switchyard.index.ingest", "switchyard.index.delete"]
    settings_env(QUEUE_MAX_DEPTH_INDEX=str(jobs.queued_depth(kinds, 10**6) + 1))
    filler = _recorded("switchyard.index.ingest", {"collection": "full"})  # recorded, never sent
    try:
        with pytest.raises(QueueFullError) as refused:
            dispatch.enqueue("index.ingest", {"collection": "full", "documents": [{"id": "a", "text": "x"}]})
        assert refused.value.queue == "index" and refused.value.retry_after > 0
        response = asyncio.run(_switchyard_error(None, refused.value))
        assert response.status_code == 429 and response.headers["Retry-After"] == str(refused.value.retry_after)
        assert b'"queue_full"' in response.body
    finally:
        _sql("UPDATE jobs SET status = 'cancelled' WHERE id = %s", filler.id)


def test_a_job_cancelled_while_a_connection_was_lost_ends_cancelled(stack, settings_env):
    settings_env(INFRA_RETRY_BACKOFF_S="600", REQUEUE_AFTER_S="3600")

    def cancelled_then_lost(_params, ctx):
        jobs.request_cancel(ctx.job_id)  # the cancel lands while the job runs...
        raise redis.exceptions.ConnectionError("Connection reset by peer")  # ...and then Redis goes

    job = _recorded()
    run_job(_delivery(job), cancelled_then_lost)
    row = jobs.get(job.id)
    assert row.status is JobStatus.CANCELLED and row.lease_owner is None
    assert [e.type for e in events.replay(job.id)][-1] == "end"


def test_seq_never_repeats_after_redis_loses_a_job_log(stack):
    from switchyard import constants
    from switchyard.redis_conn import get_redis

    job = _recorded()
    events.publish(job.id, "status", {"status": "queued"}, first=True)
    seen = [events.publish(job.id, "progress", {"done": i}).seq for i in range(3)]  # Redis only

    def redis_restarts_empty():
        get_redis().delete(constants.job_seq_key(job.id), constants.job_log_stream(job.id))

    redis_restarts_empty()
    running = events.publish(job.id, "status", {"status": "running"})
    assert running.seq > max(seen)  # a live subscriber saw those seqs: never hand them out again
    # A seq this process once owed to Redis (written to Postgres during an outage) must not pull a lost
    # counter back below what subscribers saw.
    events._floors[job.id] = str(running.seq - 1)
    redis_restarts_empty()
    end = events.publish(job.id, "end", {"status": "succeeded"})
    assert end.seq > running.seq
    replayed = [(e.type, e.seq) for e in events.replay(job.id)]
    assert replayed == [("status", 1), ("status", running.seq), ("end", end.seq)]  # Postgres's copy fills in
