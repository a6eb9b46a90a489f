"""The backbone end to end: real Postgres, Redis and Celery worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from switchyard import client, events, jobs, signing
from switchyard.redis_conn import get_redis
from tests.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.integration


def test_ping_job_runs_and_streams_every_event_in_order(stack, control_worker):
    job = client.enqueue("control.ping", {"seconds": 0.6})
    received = list(client.events(job.id, timeout=30))
    assert [e.seq for e in received] == list(range(1, len(received) + 1))
    assert received[-1].type == "end" and received[-1].data["status"] == "succeeded"
    assert [e.data["status"] for e in received if e.type == "status"] == ["queued", "running", "succeeded"]
    progress = [e for e in received if e.type == "progress"]
    assert progress[0].data["pid"] and progress[0].data["hostname"]
    final = jobs.get(job.id)
    assert final.status.value == "succeeded" and final.attempts == 1
    assert final.result["seconds"] == 0.6 and final.result["pid"] == progress[0].data["pid"]


def test_late_subscriber_gets_every_event_once(stack, control_worker):
    job = client.enqueue("control.ping", {"seconds": 0.2})
    live = list(client.events(job.id, timeout=30))
    late = list(client.events(job.id, timeout=5))
    assert [e.to_json() for e in late] == [e.to_json() for e in live]
    resumed = list(client.events(job.id, after_seq=3, timeout=5))
    assert [e.seq for e in resumed] == [e.seq for e in live if e.seq > 3]


def test_replay_falls_back_to_postgres_when_the_redis_log_is_gone(stack, control_worker):
    job = client.wait(client.enqueue("control.ping", {}).id, timeout=30)
    get_redis().delete(f"switchyard:job:{job.id}:log")
    durable = list(client.events(job.id, timeout=5))
    assert [e.type for e in durable][-1] == "end"
    assert {e.type for e in durable} <= events.DURABLE_TYPES
    assert [e.seq for e in durable] == sorted(e.seq for e in durable)


def test_idempotency_key_returns_the_same_job(stack, control_worker):
    key = f"nightly-{uuid.uuid4()}"
    first = client.enqueue("control.ping", {}, key)
    second = client.enqueue("control.ping", {}, key)
    assert first.id == second.id
    assert client.wait(first.id, timeout=30).attempts == 1


def test_raw_send_task_from_a_producer_without_switchyard(stack, control_worker):
    """A system that only has celery and the broker URL: no queue given, no ledger row made first."""
    job_id = f"raw-{uuid.uuid4()}"
    producer = (
        "import celery, sys\n"
        "app = celery.Celery(broker=sys.argv[1])\n"
        "app.send_task('switchyard.control.ping', kwargs={'seconds': 0.1}, task_id=sys.argv[2])\n"
    )
    subprocess.run([sys.executable, "-c", producer, stack.broker_url, job_id], check=True, timeout=60)
    received = list(client.events(job_id, timeout=30))
    assert received[-1].data["status"] == "succeeded"
    job = jobs.get(job_id)
    assert job.producer == "celery" and job.kind == "switchyard.control.ping" and job.params == {"seconds": 0.1}


def test_invalid_message_fails_its_own_job_with_the_reason(stack, control_worker):
    job_id = f"bad-{uuid.uuid4()}"
    from workers.app import app

    app.send_task("switchyard.control.ping", kwargs={"seconds": "soon", "extra": 1}, task_id=job_id,
                  queue="control")
    end = list(client.events(job_id, timeout=30))[-1]
    assert end.data["status"] == "failed"
    job = jobs.get(job_id)
    assert job.status.value == "failed" and job.attempts == 0 and job.started_at is None
    assert job.error["type"] == "invalid_params"
    assert {tuple(e["loc"]) for e in job.error["errors"]} == {("seconds",), ("extra",)}
    # The worker is still healthy: the next job runs.
    assert client.wait(client.enqueue("control.ping", {}).id, timeout=30).status.value == "succeeded"


def test_cancel_reaches_a_running_job_across_processes(stack, control_worker):
    job = client.enqueue("control.ping", {"seconds": 30})
    for event in client.events(job.id, timeout=30):
        if event.type == "progress":
            break
    client.cancel(job.id)
    rest = list(client.events(job.id, after_seq=event.seq, timeout=30))
    assert rest[-1].data["status"] == "cancelled"
    done = [e.data["done"] for e in rest if e.type == "progress"]
    assert not done or max(done) < 25  # stopped long before its 30 s of work
    assert jobs.get(job.id).status.value == "cancelled"


def test_cancel_of_a_queued_job_ends_it_at_once(stack):
    job, _ = jobs.create("switchyard.control.ping", {})  # recorded, not yet sent to a worker
    assert client.cancel(job.id).status.value == "cancelled"
    end = list(client.events(job.id, timeout=10))[-1]
    assert end.type == "end" and end.data["status"] == "cancelled"
    assert client.cancel(job.id).status.value == "cancelled"  # cancelling twice is harmless


class _Receiver(BaseHTTPRequestHandler):
    calls: list = []
    fail_first = 1

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((dict(self.headers), body))
        code = 500 if len(type(self).calls) <= type(self).fail_first else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_outbound_webhook_is_signed_and_retried(stack, control_worker):
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://localhost:{server.server_port}/done"  # allowlisted for tests (tests/conftest.py)
    try:
        job = client.enqueue("control.ping", {}, callback_url=url)
        client.wait(job.id, timeout=30)
        from switchyard.db import connection

        for _ in range(100):
            with connection() as conn:
                row = conn.execute("SELECT * FROM callback_deliveries WHERE job_id = %s", (job.id,)).fetchone()
            if row and row["status"] == "delivered":
                break
            threading.Event().wait(0.1)
        assert row["status"] == "delivered" and row["attempts"] == 2
        headers, body = _Receiver.calls[-1]
        assert json.loads(body)["job"]["id"] == job.id
        assert json.loads(body)["job"]["status"] == "succeeded"
        signing.verify(WEBHOOK_SECRET, body, headers[signing.HEADER])  # raises if the signature is wrong
    finally:
        server.shutdown()


def test_a_recorded_job_whose_message_was_never_sent_is_sent_by_the_reaper(stack, control_worker):
    """The outbox: a producer that died between recording the job and sending its message loses nothing."""
    from switchyard.db import connection

    job, _ = jobs.create("switchyard.control.ping", {})
    with connection() as conn:  # recorded a minute ago, never dispatched
        conn.execute("UPDATE jobs SET created_at = now() - interval '1 minute' WHERE id = %s", (job.id,))
    ended = client.wait(job.id, timeout=60)
    assert ended.status.value == "succeeded" and ended.attempts == 1 and ended.dispatched_at is not None
