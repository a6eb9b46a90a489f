"""events.py's Postgres copy against the real database: what the fine-tuning API pages through."""

from __future__ import annotations

import time

from switchyard import constants, events, jobs


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
