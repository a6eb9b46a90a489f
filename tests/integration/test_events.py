"""events.py's Postgres copy against the real database: what the fine-tuning API pages through."""

from __future__ import annotations

import time

from switchyard import constants, events, jobs
from switchyard.ledger_writer import ledger_writer


def test_durable_events_before_pages_newest_first_by_type(stack):
    job, _ = jobs.create("switchyard.control.ping", {})
    events.publish(job.id, "status", {"status": "queued"}, first=True)
    events.publish(job.id, "progress", {"done": 1})  # not durable: Redis only
    events.publish(job.id, "metrics", {"loss": 1.5})
    events.publish(job.id, "log", {"text": "hello"})
    events.publish(job.id, "message", {"text": "step"})

    rows = events.durable_events_before(job.id, ["status", "metrics", "message"], 2**31, 10)
    assert [(r["seq"], r["type"]) for r in rows] == [(5, "message"), (3, "metrics"), (1, "status")]
    assert rows[1]["data"] == {"loss": 1.5}

    page = events.durable_events_before(job.id, ["status", "metrics", "message"], 5, 1)
    assert [r["seq"] for r in page] == [3]
    assert events.durable_events_before(job.id, ["end"], 2**31, 10) == []


def _ended_job(extra: int = 0) -> str:
    job, _ = jobs.create("switchyard.control.ping", {})
    events.publish(job.id, "status", {"status": "queued"}, first=True)
    for i in range(extra):
        events.publish(job.id, "progress", {"done": i})
    events.publish_many(job.id, [("status", {"status": "succeeded"}), ("end", {"status": "succeeded"})])
    return job.id


def test_a_subscriber_reuses_a_finished_ones_connection_and_sees_only_its_own_job(stack):
    from switchyard.redis_conn import get_redis

    first = _ended_job()
    assert [e.seq for e in events.subscribe(first, timeout=10)] == [1, 2, 3]
    idle = events._idle_list()
    assert idle, "the finished subscriber's connection was kept"
    kept = idle[-1].connection
    for i in range(5):
        # The earlier job's channel keeps publishing while the connection changes hands: none of it may
        # reach the next subscriber, which must also see its own job whole, in order.
        get_redis().publish(constants.job_channel(first), events.Event(99, first, "progress", {}, 0.0).to_json())
        second = _ended_job(extra=i)
        seen = list(events.subscribe(second, timeout=10))
        assert {e.job_id for e in seen} == {second}
        assert [e.seq for e in seen] == list(range(1, i + 4))
    assert events._idle_list()[-1].connection is kept  # one connection served every subscriber


def test_a_live_subscriber_on_a_reused_connection_gets_events_published_after_it_subscribed(stack):
    import threading

    list(events.subscribe(_ended_job(), timeout=10))  # leaves its connection idle for the one below
    job, _ = jobs.create("switchyard.control.ping", {})
    events.publish(job.id, "status", {"status": "queued"}, first=True)
    got: list[events.Event] = []
    reader = threading.Thread(target=lambda: got.extend(events.subscribe(job.id, timeout=10)))
    reader.start()
    time.sleep(0.2)
    events.publish_many(job.id, [("status", {"status": "succeeded"}), ("end", {"status": "succeeded"})])
    reader.join(15)
    assert [e.seq for e in got] == [1, 2, 3] and got[-1].is_end


def _queued_job() -> str:
    job, _ = jobs.create("switchyard.control.ping", {})
    events.publish(job.id, "status", {"status": "queued"}, first=True)
    return job.id


def _logged(job_id: str) -> list[tuple[int, str, str | None]]:
    return [(e.seq, e.type, e.data.get("status")) for e in events.replay(job_id)]


def test_a_held_event_goes_out_first_with_the_jobs_next_event(stack):
    job_id = _queued_job()
    events.hold(job_id, "status", {"status": "running"}, linger_s=60)
    assert _logged(job_id) == [(1, "status", "queued")]  # held, not yet published
    progress = events.publish(job_id, "progress", {"done": 0})
    assert progress.seq == 3  # the caller gets its own event back
    assert _logged(job_id) == [(1, "status", "queued"), (2, "status", "running"), (3, "progress", None)]
    ledger_writer().flush()  # the running copy was deferred (its carrier, a progress, is not durable)
    assert [e.seq for e in events._durable_events(job_id, 0)] == [1, 2]


def test_a_held_event_goes_out_alone_when_nothing_follows(stack):
    job_id = _queued_job()
    events.hold(job_id, "status", {"status": "running"}, linger_s=0.01)
    deadline = time.monotonic() + 5
    while len(_logged(job_id)) < 2:
        assert time.monotonic() < deadline, "the held event was never published"
        time.sleep(0.01)
    assert _logged(job_id) == [(1, "status", "queued"), (2, "status", "running")]


def test_a_new_jobs_first_event_waits_for_every_held_event(stack):
    parent = _queued_job()
    events.hold(parent, "status", {"status": "running"}, linger_s=60)
    _queued_job()  # a sub-job the held job made: its announcement must not overtake the parent's running
    assert _logged(parent) == [(1, "status", "queued"), (2, "status", "running")]


def test_an_end_carries_the_held_event_and_both_copies_are_written_at_once(stack):
    job_id = _queued_job()
    events.hold(job_id, "status", {"status": "running"}, linger_s=60)
    events.publish_many(job_id, [("status", {"status": "succeeded"}), ("end", {"status": "succeeded"})])
    assert [t for _s, t, _d in _logged(job_id)] == ["status", "status", "status", "end"]
    assert [e.seq for e in events._durable_events(job_id, 0)] == [1, 2, 3, 4]  # no flush needed


def test_concurrent_publishers_of_a_held_job_keep_its_order(stack):
    import threading

    for _ in range(20):
        job_id = _queued_job()
        events.hold(job_id, "status", {"status": "running"}, linger_s=0)
        racer = threading.Thread(target=events.release_held)
        racer.start()
        events.publish(job_id, "progress", {"done": 0})
        racer.join()
        assert [t for _s, t, _d in _logged(job_id)] == ["status", "status", "progress"]
