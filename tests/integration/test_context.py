"""JobContext against the real Redis: what a job emits, and a cancel seen at a step boundary."""

from __future__ import annotations

import time

import pytest

from switchyard import dispatch, events, jobs
from switchyard.context import JobContext
from switchyard.errors import JobCancelled
from switchyard.jobs import JobStatus


def test_emits_events_and_sees_a_cancel(stack):
    job, _ = jobs.create("switchyard.control.ping", {}, tenant="t9")
    ctx = JobContext(job.id, tenant="t9", owner="owner-ctx")
    ctx.progress(1, 4, step="a")
    ctx.metrics(loss=0.5)
    ctx.message("hello")
    logged = [(e.type, e.data) for e in events.replay(job.id)]
    assert [t for t, _ in logged] == ["progress", "metrics", "message"]
    assert logged[0][1]["done"] == 1 and logged[0][1]["total"] == 4 and logged[0][1]["step"] == "a"
    assert ctx.stop_reason() is None and ctx.tenant == "t9"

    jobs.claim(job.id, "owner-ctx", "w", 30)
    assert dispatch.cancel(job.id).status is JobStatus.RUNNING  # a running job is asked, not ended
    deadline = time.monotonic() + 5  # the context looks at most every 100 ms
    while ctx.stop_reason() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(JobCancelled):
        ctx.raise_if_stopped()
    assert jobs.finish(job.id, "owner-ctx", JobStatus.CANCELLED) is not None


def test_a_detached_context_publishes_nothing(stack):
    ctx = JobContext.detached("local-test")
    assert ctx.emit("progress", {"done": 1}) is None and ctx.stop_reason() is None
