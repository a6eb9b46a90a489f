"""runner.run_job calls a pool's hooks (switchyard.hooks) around the job, against the real database and
Redis: in order, before the ledger records the end, and unwinding on cancel and failure."""

from __future__ import annotations

import pytest

from switchyard import events, hooks, jobs
from switchyard.errors import JobCancelled
from switchyard.hooks import JobHook
from switchyard.jobs import JobStatus
from switchyard.runner import Delivery, run_job

PING = "switchyard.control.ping"


class Recorder(JobHook):
    """Records each call with the job's ledger status at that moment, and the tenant it was given."""

    def __init__(self, name: str, calls: list, *, fail_before: bool = False):
        self.name, self.calls, self.fail_before = name, calls, fail_before

    def _record(self, what: str, ctx) -> None:
        self.calls.append((f"{self.name}.{what}", jobs.get(ctx.job_id).status.value, ctx.tenant))

    def before_run(self, params, ctx):
        self._record("before_run", ctx)
        if self.fail_before:
            raise RuntimeError("no thread for you")

    def after_run(self, params, ctx, result):
        self._record("after_run", ctx)

    def on_failure(self, params, ctx, exc):
        self._record("on_failure", ctx)

    def on_cancel(self, params, ctx, exc):
        self._record("on_cancel", ctx)


@pytest.fixture
def chain():
    """``chain(*hooks)`` registers them for ping (the first for its whole pool); all removed after."""
    added: list[JobHook] = []

    def register(pool_hook: JobHook, *task_hooks: JobHook) -> None:
        added.append(hooks.register(pool_hook, queue="control"))
        added.extend(hooks.register(h, task=PING) for h in task_hooks)

    yield register
    for hook in added:
        hooks.unregister(hook)


def deliver(job: jobs.Job) -> Delivery:
    return Delivery(PING, job.id, job.params, tenant=job.tenant)


def test_hooks_wrap_the_function_in_order_before_the_end_is_recorded(stack, chain):
    calls: list = []
    chain(Recorder("pool", calls), Recorder("task", calls))
    job, _ = jobs.create(PING, {"seconds": 0}, tenant="acme")

    def fn(params, ctx):
        calls.append(("fn", jobs.get(ctx.job_id).status.value, ctx.tenant))
        return {"ok": True}

    assert run_job(deliver(job), fn) == {"ok": True}
    assert calls == [(name, "running", "acme") for name in (
        "pool.before_run", "task.before_run", "fn", "task.after_run", "pool.after_run")]
    assert jobs.get(job.id).status is JobStatus.SUCCEEDED and events.replay(job.id)[-1].type == "end"


def test_a_failing_before_run_fails_the_job_and_unwinds_only_the_hooks_that_entered(stack, chain):
    calls: list = []
    chain(Recorder("pool", calls), Recorder("task", calls, fail_before=True))
    job, _ = jobs.create(PING, {"seconds": 0})

    assert run_job(deliver(job), lambda params, ctx: calls.append(("fn",))) is None
    assert [c[0] for c in calls] == ["pool.before_run", "task.before_run", "pool.on_failure"]
    failed = jobs.get(job.id)
    assert failed.status is JobStatus.FAILED and failed.error["message"] == "no thread for you"


def test_a_cancelled_job_unwinds_through_on_cancel(stack, chain):
    calls: list = []
    chain(Recorder("pool", calls), Recorder("task", calls))
    job, _ = jobs.create(PING, {"seconds": 0})

    def fn(params, ctx):
        raise JobCancelled(ctx.job_id)

    run_job(deliver(job), fn)
    assert [c[0] for c in calls] == ["pool.before_run", "task.before_run", "task.on_cancel", "pool.on_cancel"]
    assert {c[1] for c in calls} == {"running"}  # unwound before the ledger recorded the end
    assert jobs.get(job.id).status is JobStatus.CANCELLED


def test_an_after_run_that_raises_fails_the_job(stack, chain):
    class Broken(JobHook):
        def after_run(self, params, ctx, result):
            raise RuntimeError("could not give the thread back")

    calls: list = []
    chain(Recorder("pool", calls), Broken())
    job, _ = jobs.create(PING, {"seconds": 0})

    assert run_job(deliver(job), lambda params, ctx: {"ok": True}) is None
    assert [c[0] for c in calls] == ["pool.before_run", "pool.on_failure"]
    failed = jobs.get(job.id)
    assert (failed.status, failed.result) == (JobStatus.FAILED, None)
    assert failed.error["message"] == "could not give the thread back"
