"""The trigger stream: at-least-once consumption with a consumer group and a dead-letter stream."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from switchyard import client, jobs
from switchyard.listen import Listener
from switchyard.redis_conn import get_redis

pytestmark = pytest.mark.integration


@pytest.fixture
def listener(stack):
    name = f"test:triggers:{uuid.uuid4().hex[:8]}"
    listener = Listener(stream=name, dead_letter=f"{name}:dead", block_ms=200, claim_idle_ms=100)
    listener.ensure_group()
    yield listener
    get_redis().delete(name, f"{name}:dead")


def test_stream_entries_become_jobs_and_malformed_ones_are_dead_lettered(listener, control_worker):
    r = get_redis()
    good = r.xadd(listener.stream, {"kind": "control.ping", "params": json.dumps({"seconds": 0.1})})
    r.xadd(listener.stream, {"kind": "control.ping", "params": "{not json"})
    r.xadd(listener.stream, {"kind": "nope.unknown", "params": "{}"})
    r.xadd(listener.stream, {"kind": "control.ping", "params": json.dumps({"seconds": -1})})
    assert listener.poll_once() == 4

    job = jobs.list_jobs(kind="switchyard.control.ping", limit=1)[0]
    assert job.idempotency_key == f"{listener.stream}:{good.decode()}" and job.producer == "stream"
    assert client.wait(job.id, timeout=30).status.value == "succeeded"

    dead = r.xrange(listener.dead_letter)
    reasons = [fields[b"_reason"].decode() for _id, fields in dead]
    assert len(dead) == 3
    assert "Expecting property name" in reasons[0] and "unknown task" in reasons[1] and "seconds" in reasons[2]
    assert r.xpending(listener.stream, listener.group)["pending"] == 0


def test_an_entry_read_but_not_acknowledged_is_retried_without_a_second_job(listener, control_worker):
    r = get_redis()
    entry = r.xadd(listener.stream, {"kind": "control.ping", "params": "{}"})
    # A listener that read the entry and died before acknowledging it:
    crashed = r.xreadgroup(listener.group, "crashed-consumer", {listener.stream: ">"}, count=1)
    assert crashed[0][1][0][0] == entry
    # ... and recorded its job, then died before XACK:
    from switchyard import dispatch

    first, created = dispatch.enqueue("control.ping", {}, idempotency_key=f"{listener.stream}:{entry.decode()}",
                                      producer="stream")
    assert created
    time.sleep(0.2)  # longer than claim_idle_ms: the entry counts as abandoned
    assert listener.poll_once() == 1  # reclaimed from the dead consumer
    assert r.xpending(listener.stream, listener.group)["pending"] == 0
    same_key = [j for j in jobs.list_jobs(limit=20) if j.idempotency_key == f"{listener.stream}:{entry.decode()}"]
    assert [j.id for j in same_key] == [first.id]
