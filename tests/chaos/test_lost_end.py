"""A worker killed between committing a job's final status and publishing its `end` (RELIABILITY.md,
"Lost ends"): the reaper announces the end, once.

The crash is placed with the ``SWITCHYARD_TEST_KILL_AT=after_finish`` fault point (switchyard/faults.py):
the window is too short to hit with a kill from outside.
"""

from __future__ import annotations

import time
import uuid

import pytest

from switchyard import events, jobs
from switchyard.db import connection
from switchyard.end_repair import repair_missing_ends
from switchyard.faults import KILL_AT_ENV
from tests.chaos._soak import PrivateStack

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def private():
    stack = PrivateStack().start()
    try:
        yield stack
    finally:
        stack.close()


def _ends_in_postgres(job_id: str) -> list[dict]:
    with connection() as conn:
        return conn.execute("SELECT seq, data FROM job_events WHERE job_id = %s AND type = 'end'",
                            (job_id,)).fetchall()


def test_a_worker_killed_after_finishing_a_job_still_ends_its_stream(private):
    private.worker("control")
    private.beat()
    killer = private.worker("index", concurrency=1, env={KILL_AT_ENV: "after_finish"})
    job_id = private.send_raw("switchyard.index.delete", {"collection": "lost-end", "ids": ["nothing-here"]},
                              "index")
    with private.activate():
        seen = list(events.subscribe(job_id, timeout=120))  # waits through the kill for the end
        final = jobs.get(job_id)
        replayed = events.replay(job_id)
        # The Postgres copy follows the live publish by a few milliseconds.
        deadline = time.monotonic() + 30
        while not (durable_ends := _ends_in_postgres(job_id)) and time.monotonic() < deadline:
            time.sleep(0.1)
    # The fault happened where it should: the pool child died by SIGKILL after the ledger said final.
    assert "signal 9" in killer.log() and "SIGKILL" in killer.log()
    assert final.status.is_terminal and final.lease_owner is None
    ends = [e for e in seen if e.is_end]
    assert len(ends) == 1 and ends[0] is seen[-1]
    assert ends[0].data["status"] == final.status.value
    # One end everywhere: Redis's log, Postgres's copy, and the same seq a subscriber saw.
    assert [e.seq for e in replayed if e.is_end] == [ends[0].seq]
    assert [r["seq"] for r in durable_ends] == [ends[0].seq]
    statuses = [e.data["status"] for e in seen if e.type == "status"]
    assert statuses[-1] == final.status.value and statuses.count("running") == 1  # never ran twice
    assert "its end was never published" in private.logs()


def test_an_end_that_reached_redis_but_not_postgres_is_copied_not_repeated(stack):
    job, _ = jobs.create("switchyard.faulttest.noop", {})
    owner = f"w-{uuid.uuid4().hex[:6]}"
    assert jobs.claim(job.id, owner, "w", 30) is not None
    ended = jobs.finish(job.id, owner, jobs.JobStatus.SUCCEEDED, result={"ok": True})
    # The worker published to Redis and died before Postgres's copy (persist=False leaves it out).
    events.publish(job.id, "status", {"status": "succeeded"}, persist=False)
    logged_end = events.publish(job.id, "end", {"status": "succeeded", "result": ended.result}, persist=False)
    assert _ends_in_postgres(job.id) == []
    repair_missing_ends(grace_s=0)
    assert [r["seq"] for r in _ends_in_postgres(job.id)] == [logged_end.seq]
    assert [e.seq for e in events.replay(job.id) if e.is_end] == [logged_end.seq]
    repair_missing_ends(grace_s=0)  # a further pass finds nothing to do for it
    assert len(_ends_in_postgres(job.id)) == 1
