"""events.py's Postgres copy against the real database: what the fine-tuning API pages through."""

from __future__ import annotations

from switchyard import events, jobs


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
