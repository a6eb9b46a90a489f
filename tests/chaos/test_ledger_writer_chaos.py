"""A worker killed (kill -9) while a group commit is in flight, with more finishes queued behind it: each
job ends once, none is lost, none runs to a second end.

The victim is a process running four jobs with the runner in threads, as a threads pool does (not a
Celery worker: the session's other control workers would take some of the jobs); after the kill, the
reaper and the session's control worker take over, as they would for any dead worker.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
import pytest

from switchyard import client, events, jobs
from tests.chaos._batch_victim import VICTIM

pytestmark = pytest.mark.chaos

PING = "switchyard.control.ping"
# The first job ends first and leads a commit that our row lock holds in flight; the other three end
# later and queue behind it in the writer.
FIRST_S, OTHERS_S = 2.0, 4.0
# A backend our lock blocks that is not a lease renewal: the finish's batch.
BATCH_WAITING_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE %(locker)s = ANY(pg_blocking_pids(pid)) AND query NOT LIKE %(renewal)s
"""


def _until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout}s"
        time.sleep(0.05)


def _worked(job_id: str, seconds: float) -> bool:
    """The job's function returned: its last progress reports all of its seconds done."""
    return any(e.type == "progress" and e.data.get("done") == seconds for e in events.replay(job_id))


def test_kill_9_during_a_batch_commit_loses_nothing_and_duplicates_nothing(stack, control_worker, reaper):
    first, *others = [jobs.create(PING, {})[0] for _ in range(4)]  # recorded, never sent: the victim runs them
    plan = {first.id: FIRST_S, **{job.id: OTHERS_S for job in others}}
    log = open(stack.state_dir / "batch-victim.log", "wb")  # noqa: SIM115 - the child's output
    victim = subprocess.Popen([sys.executable, "-m", "tests.chaos._batch_victim",
                               *[f"{job_id}={seconds}" for job_id, seconds in plan.items()]],
                              env=stack.env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        _until(lambda: all(jobs.get(job_id).status.value == "running" for job_id in plan), what="all running")
        with psycopg.connect(stack.database_url, autocommit=True) as watch, \
                psycopg.connect(stack.database_url) as lock:
            lock.execute("SELECT 1 FROM jobs WHERE id = ANY(%s) FOR UPDATE", (list(plan),))
            waiting = {"locker": lock.info.backend_pid, "renewal": "%UPDATE jobs SET lease_expires_at%"}
            _until(lambda: watch.execute(BATCH_WAITING_SQL, waiting).fetchone()[0] > 0,
                   what="the first finish waiting inside its commit")
            _until(lambda: all(_worked(job.id, OTHERS_S) for job in others), what="the other three done working")
            time.sleep(0.5)  # their finishes queue behind the commit in flight
            assert all(jobs.get(job_id).status.value == "running" for job_id in plan)
            victim.kill()
            victim.wait(10)
            lock.rollback()
    finally:
        if victim.poll() is None:
            victim.kill()
        log.close()

    outcomes = {}
    for job_id in plan:
        received = list(client.events(job_id, timeout=120))
        assert [e.type for e in received].count("end") == 1
        assert received[-1].data["status"] == "succeeded"
        running = [e for e in received if e.type == "status" and e.data["status"] == "running"]
        final = jobs.get(job_id)
        assert final.status.value == "succeeded" and final.attempts == len(running)
        outcomes[job_id] = (final.attempts, final.result["worker"] == VICTIM)
    # The commit in flight was sent whole: Postgres completes it once the lock goes if it gets that far
    # before it notices the client is gone (nobody is left to publish the end: the reaper's end repair
    # does, and the job never runs again), else rolls it back (the job runs again, once). The finishes
    # still queued in the dead writer were never sent: those jobs run again, once.
    assert outcomes[first.id] in {(1, True), (2, False)}
    assert all(outcomes[job.id] == (2, False) for job in others)
    # Postgres's copy: one `end` per job, once the deferred copies have landed.
    _until(lambda: all([e.type for e in events._durable_events(job_id, 0)].count("end") == 1 for job_id in plan),
           what="each job's end in Postgres")
