"""Killed and stopped workers: no job is lost, none runs twice at once, every end is announced once."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from switchyard import client, jobs
from workers.app import app

pytestmark = pytest.mark.chaos


def _worker_running(job_id: str, timeout: float = 30) -> tuple[str, int]:
    """Wait for the job's first progress event; return (worker nodename, last seq seen)."""
    for event in client.events(job_id, timeout=timeout):
        if event.type == "progress":
            return event.data["worker"], event.seq
    raise AssertionError("job ended before it reported progress")


def test_kill_9_mid_job_requeues_after_lease_expiry_and_finishes_once(stack, control_worker, start_worker):
    spare = start_worker("control")
    job = client.enqueue("control.ping", {"seconds": 6})
    worker, _ = _worker_running(job.id)
    victim, survivor = (spare, control_worker) if worker == spare.nodename else (control_worker, spare)
    victim.kill()
    received = list(client.events(job.id, timeout=60))
    statuses = [(e.data["status"], e.data.get("reason")) for e in received if e.type == "status"]
    assert ("queued", "lease expired") in statuses
    assert [s for s, _ in statuses].count("running") == 2
    assert [e.type for e in received].count("end") == 1
    assert received[-1].data["status"] == "succeeded"
    final = jobs.get(job.id)
    assert final.attempts == 2 and final.status.value == "succeeded"
    assert final.result["worker"] != worker
    survivor.terminate()


def test_redelivery_while_the_first_worker_is_alive_does_not_start_a_second_copy(
    stack, control_worker, start_worker
):
    second = start_worker("control")
    job = client.enqueue("control.ping", {"seconds": 3})
    _worker_running(job.id)
    # What the Redis transport does after its visibility timeout: the same message, delivered again.
    for _ in range(3):
        app.send_task(job.kind, kwargs=job.params, task_id=job.id, queue="control")
    received = list(client.events(job.id, timeout=60))
    assert [e.data["status"] for e in received if e.type == "status"].count("running") == 1
    assert [e.type for e in received].count("end") == 1
    assert jobs.get(job.id).attempts == 1
    time.sleep(0.5)
    logs = second.log() + control_worker.log()
    assert logs.count(f"dropping duplicate delivery of job {job.id}") == 3
    second.terminate()


def test_sigterm_requeues_a_long_job_which_resumes_elsewhere(stack, control_worker, start_worker):
    spare = start_worker("control")
    job = client.enqueue("control.ping", {"seconds": 5})
    worker, _ = _worker_running(job.id)
    victim = spare if worker == spare.nodename else control_worker
    assert victim.terminate(timeout=20) == 0  # warm shutdown finishes promptly
    received = list(client.events(job.id, timeout=60))
    statuses = [(e.data["status"], e.data.get("reason")) for e in received if e.type == "status"]
    assert ("queued", "worker shutting down") in statuses
    assert received[-1].data["status"] == "succeeded"
    assert jobs.get(job.id).attempts == 2


def test_concurrent_migrate_is_safe(stack):
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        procs = [
            subprocess.Popen([sys.executable, "-m", "switchyard.cli", "migrate"], env=stack.env(
                SWITCHYARD_DATABASE_URL=url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
        assert sum("applied:" in out for out in outputs) == 1
        with psycopg.connect(url) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM switchyard_migrations")]
            assert len(names) == len(set(names)) and "0001_jobs.sql" in names
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0] == 1
    finally:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
