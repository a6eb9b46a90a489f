"""The backbone end to end: real Postgres, Redis and Celery worker processes."""

from __future__ import annotations

import pytest

from switchyard import client, jobs

pytestmark = pytest.mark.integration


def test_ping_job_runs_and_streams_every_event_in_order(stack, control_worker):
    job = client.enqueue("control.ping", {"seconds": 0.6})
    events = list(client.events(job.id, timeout=30))
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert events[-1].type == "end" and events[-1].data["status"] == "succeeded"
    statuses = [e.data["status"] for e in events if e.type == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    progress = [e for e in events if e.type == "progress"]
    assert progress[0].data["pid"] and progress[0].data["hostname"]
    final = jobs.get(job.id)
    assert final.status.value == "succeeded" and final.attempts == 1
    assert final.result["seconds"] == 0.6 and final.result["pid"] == progress[0].data["pid"]
