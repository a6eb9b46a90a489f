"""dispatch.enqueue against the real database, Redis and broker: recorded, announced and sent once;
invalid params record nothing; the control worker runs what was sent to its end."""

from __future__ import annotations

import uuid

import pytest

from switchyard import dispatch, events, jobs
from switchyard.errors import InvalidParamsError
from switchyard.jobs import JobStatus
from switchyard.ledger_writer import ledger_writer


def test_enqueue_records_announces_sends_and_the_worker_ends_it(stack, control_worker):
    key = uuid.uuid4().hex
    job, created = dispatch.enqueue("control.ping", {"seconds": 0}, idempotency_key=key, producer="t", tenant="t3")
    assert created and job.kind == "switchyard.control.ping" and job.tenant == "t3"
    ledger_writer().flush()  # the dispatched mark rides the producer's ledger writer (deferred)
    assert jobs.get(job.id).dispatched_at is not None  # sent after the row was written
    first = events.replay(job.id)[0]
    assert (first.seq, first.type, first.data["status"]) == (1, "status", "queued")

    again, created_again = dispatch.enqueue("control.ping", {"seconds": 0}, idempotency_key=key, producer="t")
    assert not created_again and again.id == job.id  # nothing sent twice

    ended = [e for e in events.subscribe(job.id, timeout=60) if e.type == "end"]
    assert ended and ended[0].data["status"] == "succeeded"
    assert jobs.get(job.id).status is JobStatus.SUCCEEDED


def test_invalid_params_record_nothing(stack):
    key = uuid.uuid4().hex
    with pytest.raises(InvalidParamsError) as refused:
        dispatch.enqueue("control.ping", {"seconds": "soon"}, idempotency_key=key, producer="t")
    assert refused.value.errors[0]["loc"] == ("seconds",)
    _, created = jobs.create("switchyard.control.ping", {}, idempotency_key=key, producer="t")
    assert created  # the refused call left no row behind under its key
