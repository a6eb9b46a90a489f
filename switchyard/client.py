"""The Python client: enqueue jobs, read them, wait for them, cancel them, follow their events.

It talks to the ledger (Postgres), the event bus (Redis) and the broker directly, with the same
``SWITCHYARD_*`` settings as the workers::

    from switchyard import client
    job = client.enqueue("control.ping", {"seconds": 1}, idempotency_key="nightly-1")
    for event in client.events(job.id):
        print(event.type, event.data)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from switchyard import dispatch, jobs
from switchyard import events as event_log
from switchyard.events import Event
from switchyard.jobs import Job

__all__ = ["cancel", "enqueue", "events", "get", "submit_many", "wait"]


def enqueue(kind: str, params: dict[str, Any] | None = None, idempotency_key: str | None = None, *,
            producer: str = "client", tenant: str = "default", callback_url: str | None = None) -> Job:
    """Submit a job by task name (``"control.ping"`` or ``"switchyard.control.ping"``)."""
    job, _created = dispatch.enqueue(kind, params, idempotency_key=idempotency_key, producer=producer,
                                     tenant=tenant, callback_url=callback_url)
    return job


def submit_many(items: list[dict[str, Any]], *, producer: str = "client", tenant: str = "default") -> list[Job]:
    """Submit a batch in one durable commit: each item ``{"kind", "params", "idempotency_key"?,
    "callback_url"?}``. The jobs in order; an item whose key was seen before returns the first job. One
    invalid item raises ``InvalidParamsError`` (errors located ``["jobs", index, ...]``), recording none."""
    batch = [jobs.NewJob(i["kind"], i.get("params") or {}, i.get("idempotency_key"), i.get("callback_url"))
             for i in items]
    return [job for job, _created in dispatch.enqueue_many(batch, producer=producer, tenant=tenant)]


def get(job_id: str) -> Job:
    return jobs.get(job_id)


def wait(job_id: str, timeout: float | None = None) -> Job:
    """Block until the job has ended (its ``end`` event), and return its final ledger row."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for event in event_log.subscribe(job_id, timeout=timeout):
        if event.is_end:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} did not end within {timeout}s")
    return jobs.get(job_id)


def cancel(job_id: str) -> Job:
    return dispatch.cancel(job_id)


def events(job_id: str, after_seq: int = 0, *, timeout: float | None = None) -> Iterator[Event]:
    """Every event of the job after ``after_seq``, once and in order, ending with ``end``.

    Resumable: pass the last ``seq`` you saw to continue after a disconnect.
    """
    return event_log.subscribe(job_id, after_seq, timeout=timeout)
