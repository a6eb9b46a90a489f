"""A worker killed (kill -9) while a group commit of several finishes is in flight: nothing in that batch
was committed, so every job in it runs again and ends once; none is lost, none ends twice."""

from __future__ import annotations

import time

import psycopg
import pytest

from switchyard import client, events, jobs

pytestmark = pytest.mark.chaos

FINISH_WAITING_SQL = """
SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s
"""


def _until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout}s"
        time.sleep(0.05)


def test_kill_9_during_a_batch_commit_loses_nothing_and_duplicates_nothing(stack, reaper, start_worker, _control):
    victim = start_worker("control", concurrency=4)
    batch = [client.enqueue("control.ping", {"seconds": 1.5}) for _ in range(4)]
    # Every job running (its first progress event names its worker).
    workers = {}
    for job in batch:
        for event in client.events(job.id, timeout=60):
            if event.type == "progress":
                workers[job.id] = event.data["worker"]
                break
    with psycopg.connect(stack.database_url, autocommit=True) as watch, psycopg.connect(stack.database_url) as lock:
        # Hold the rows: the first finish's group commit stays in flight (its UPDATE waits on the lock),
        # and the others queue behind it in the writer.
        lock.execute("SELECT 1 FROM jobs WHERE id = ANY(%s) FOR UPDATE", ([j.id for j in batch],))
        _until(lambda: watch.execute(FINISH_WAITING_SQL, ("%UPDATE jobs SET status = %",)).fetchone()[0] > 0,
               what="a finish waiting inside its batch commit")
        time.sleep(0.3)  # let the other three finish their work and queue behind it
        assert all(jobs.get(j.id).status.value == "running" for j in batch)
        # kill -9 every worker that runs one of them (the session's control worker may hold some)
        killed = [victim, *[h for h in [_control["worker"]] if h is not None and h.nodename in workers.values()]]
        for handle in killed:
            handle.kill()
        lock.rollback()
    assert set(workers.values()) <= {h.nodename for h in killed}
    survivor = start_worker("control")
    try:
        for job in batch:
            received = list(client.events(job.id, timeout=90))
            assert [e.type for e in received].count("end") == 1
            assert received[-1].data["status"] == "succeeded"
            running = [e for e in received if e.type == "status" and e.data["status"] == "running"]
            assert len(running) == 2  # the killed attempt, then the rerun: nothing finished in the killed batch
            final = jobs.get(job.id)
            assert final.status.value == "succeeded" and final.attempts == 2
            assert final.result["worker"] not in {h.nodename for h in killed}
        # Postgres's copy too: one `end` per job, once its deferred copy has landed.
        _until(lambda: all([e.type for e in events._durable_events(j.id, 0)].count("end") == 1 for j in batch),
               what="each job's end in Postgres")
    finally:
        survivor.terminate()
