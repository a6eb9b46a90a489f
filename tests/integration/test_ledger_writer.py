"""switchyard/ledger_writer.py against the real database: concurrent finishes share one commit, a bad
write fails alone, deferred copies land without a waiter, and the way in writes the first event once."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg

from switchyard import dispatch, events, jobs
from switchyard.jobs import JobStatus
from switchyard.ledger_writer import GroupCommit, ledger_writer

PING = "switchyard.control.ping"


def _running_jobs(n: int, owner: str) -> list[jobs.Job]:
    out = []
    for _ in range(n):
        job, _ = jobs.create(PING, {})
        out.append(jobs.claim(job.id, owner, "w", 30))
    return out


def _until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _blocked_on_lock(stack) -> bool:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND query LIKE %s", ("%UPDATE jobs SET status = %",)).fetchone()[0] > 0


def test_finishes_queued_behind_a_commit_in_flight_share_the_next_one(stack):
    owner = f"owner-{uuid.uuid4().hex[:6]}"
    held, *rest = _running_jobs(6, owner)
    writer = ledger_writer()
    ended: dict[str, jobs.Job | None] = {}

    def finish(job: jobs.Job) -> None:
        ended[job.id] = jobs.finish(job.id, owner, JobStatus.SUCCEEDED, result={"n": 1})

    # A row lock keeps the first finish's commit in flight while the other five queue behind it.
    with psycopg.connect(stack.database_url) as locker:
        locker.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (held.id,))
        first = threading.Thread(target=finish, args=(held,))
        first.start()
        _until(lambda: _blocked_on_lock(stack))
        before = writer.stats.batches
        others = [threading.Thread(target=finish, args=(job,)) for job in rest]
        for thread in others:
            thread.start()
        _until(lambda: writer.queued() == len(rest))
        assert not ended  # nobody returns before its commit
        locker.rollback()
    for thread in (first, *others):
        thread.join(30)
    assert writer.stats.batches - before == 2  # the held one's, then all five together
    assert writer.stats.largest >= len(rest)
    for job in (held, *rest):
        assert ended[job.id] is not None and ended[job.id].status is JobStatus.SUCCEEDED
        assert jobs.get(job.id).status is JobStatus.SUCCEEDED


def test_a_bad_write_fails_alone_and_its_batch_mates_commit(stack):
    owner = f"owner-{uuid.uuid4().hex[:6]}"
    held, good = _running_jobs(2, owner)
    writer = GroupCommit()
    outcome: dict[str, object] = {}

    def bad() -> None:
        try:  # no such job: the foreign key refuses the row and aborts the shared transaction
            writer.write(events.PERSIST_EVENTS_SQL, (f"missing-{uuid.uuid4()}", 1, "status", "{}", 0.0))
        except psycopg.errors.ForeignKeyViolation as exc:
            outcome["bad"] = exc

    def finish(job: jobs.Job) -> None:
        outcome[job.id] = writer.write(jobs.FINISH_SQL, {"id": job.id, "owner": owner, "status": "succeeded",
                                                         "result": None, "error": None})

    with psycopg.connect(stack.database_url) as locker:
        locker.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (held.id,))
        threads = [threading.Thread(target=finish, args=(held,))]
        threads[0].start()
        _until(lambda: _blocked_on_lock(stack))
        threads += [threading.Thread(target=bad), threading.Thread(target=finish, args=(good,))]
        for thread in threads[1:]:
            thread.start()
        _until(lambda: writer.queued() == 2)
        locker.rollback()
    for thread in threads:
        thread.join(30)
    assert isinstance(outcome["bad"], psycopg.errors.ForeignKeyViolation)
    assert outcome[good.id]["status"] == "succeeded" and jobs.get(good.id).status is JobStatus.SUCCEEDED
    assert jobs.get(held.id).status is JobStatus.SUCCEEDED


def test_a_deferred_event_copy_lands_without_a_waiter(stack):
    job, _ = jobs.create(PING, {})
    event = events.publish(job.id, "status", {"status": "running"}, defer=True)
    assert ledger_writer().flush(10)
    _until(lambda: [e.seq for e in events._durable_events(job.id, 0)] == [event.seq])


def test_a_deferred_copy_is_committed_by_the_background_thread(stack):
    job, _ = jobs.create(PING, {})
    writer = GroupCommit(linger_s=0.01)
    writer.defer(events.persist_rows_sql(1), [job.id, 7, "log", '{"x": 1}', 1.0])
    _until(lambda: [(e.seq, e.data) for e in events._durable_events(job.id, 0)] == [(7, {"x": 1})])
    # The flusher counts its batch after the commit is visible: wait for the count too.
    _until(lambda: writer.stats.batches == 1)


def test_enqueue_writes_the_first_event_with_the_row_once(stack):
    job, created = dispatch.enqueue("control.ping", {"seconds": 0}, producer="lw")
    assert created
    stored = events._durable_events(job.id, 0)
    assert [(e.seq, e.type, e.data["status"]) for e in stored][:1] == [(1, "status", "queued")]
    assert [e.seq for e in stored].count(1) == 1
    first = events.replay(job.id)[0]
    assert (first.seq, first.ts, first.data) == (1, stored[0].ts, stored[0].data)


def test_a_batch_failing_outside_the_database_fails_its_writers_and_the_writer_lives_on(stack, monkeypatch):
    import switchyard.ledger_writer as module

    job = _running_jobs(1, "owner-cfg")[0]
    writer = GroupCommit(linger_s=0.01)
    real = module.connection

    def unconfigured(**_kwargs):
        raise RuntimeError("no database configured")

    monkeypatch.setattr(module, "connection", unconfigured)
    writer.defer(events.persist_rows_sql(1), [job.id, 7, "log", "{}", 1.0])
    try:
        writer.write(jobs.FINISH_SQL, {"id": job.id, "owner": "owner-cfg", "status": "succeeded",
                                       "result": None, "error": None})
    except RuntimeError:
        pass
    else:
        raise AssertionError("the waited write did not get the batch's error")
    _until(lambda: writer.queued() == 0)
    monkeypatch.setattr(module, "connection", real)
    writer.defer(events.persist_rows_sql(1), [job.id, 8, "log", "{}", 1.0])  # the flusher is still alive
    _until(lambda: 8 in [e.seq for e in events._durable_events(job.id, 0)])
