"""runner.run_job in this process against the real database and Redis: one delivery to its end, a
duplicate dropped, a failure recorded, invalid params refused before the function runs."""

from __future__ import annotations

from switchyard import events, jobs
from switchyard.jobs import JobStatus
from switchyard.runner import Delivery, run_job

PING = "switchyard.control.ping"


def deliver(job: jobs.Job, kwargs: dict | None = None) -> Delivery:
    return Delivery(PING, job.id, kwargs if kwargs is not None else job.params, tenant=job.tenant)


def test_a_delivery_runs_to_its_end_event_and_a_duplicate_is_dropped(stack):
    job, _ = jobs.create(PING, {"seconds": 0}, tenant="acme")
    calls = []

    def fn(params, ctx):
        calls.append((params.seconds, ctx.tenant, ctx.attempt))
        ctx.progress(1, 1)
        return {"ok": True}

    assert run_job(deliver(job), fn) == {"ok": True}
    assert calls == [(0, "acme", 1)]  # the context carries the row's tenant
    done = jobs.get(job.id)
    assert (done.status, done.result, done.lease_owner) == (JobStatus.SUCCEEDED, {"ok": True}, None)
    logged = events.replay(job.id)
    assert [e.type for e in logged][-3:] == ["progress", "status", "end"]
    assert logged[-1].data["status"] == "succeeded" and logged[-1].data["result"] == {"ok": True}

    assert run_job(deliver(job), fn) is None and len(calls) == 1  # redelivered after the end: dropped


def test_the_job_own_error_is_recorded_not_raised(stack):
    job, _ = jobs.create(PING, {"seconds": 0})

    def fn(params, ctx):
        raise ValueError("bad input")

    assert run_job(deliver(job), fn) is None
    failed = jobs.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert (failed.error["type"], failed.error["message"]) == ("ValueError", "bad input")
    assert events.replay(job.id)[-1].type == "end"


def test_invalid_params_fail_the_job_before_the_function_runs(stack):
    job, _ = jobs.create(PING, {"seconds": -1})
    calls = []
    assert run_job(deliver(job), lambda params, ctx: calls.append(1)) is None
    assert calls == [] and jobs.get(job.id).status is JobStatus.FAILED
