"""The job ledger: a row per job in Postgres, the source of truth for status, result and leases.

``Job`` is the stored record. The functions below are the only code that writes ``jobs``; each is one
SQL statement, so every transition is atomic and safe against concurrent workers:

- ``create`` (enqueue; idempotent per producer and key),
- ``claim`` (a worker takes the job: only if it is queued, or running under an expired lease),
- ``renew_leases`` (heartbeat), ``finish`` (only by the lease holder; committed in a group with the
  process's other finishes: switchyard/ledger_writer.py), ``request_cancel``,
- ``requeue_expired`` (the reaper), ``take_stale_queued`` and ``fail_exhausted`` (the reaper, under
  faults: RELIABILITY.md), ``release_for_retry`` (after an infrastructure fault).
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from switchyard.db import connection
from switchyard.errors import JobNotFoundError
from switchyard.ledger_writer import ledger_writer


class JobStatus(enum.StrEnum):
    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str
    status: JobStatus
    params: dict[str, Any]
    result: Any
    error: dict[str, Any] | None
    attempts: int
    producer: str
    tenant: str
    idempotency_key: str | None
    callback_url: str | None
    cancel_requested: bool
    lease_owner: str | None
    lease_expires_at: datetime | None
    worker: str | None
    created_at: datetime
    dispatched_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    redispatches: int = 0  # re-sends by the reaper (a queued job nobody claimed in time)
    infra_retries: int = 0  # releases after an infrastructure fault (lost Redis/Postgres/broker)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        data = {f.name: row[f.name] for f in fields(cls)}
        data["status"] = JobStatus(data["status"])
        return cls(**data)

    @property
    def queue(self) -> str:
        from switchyard.task_catalog import queue_for

        return queue_for(self.kind)

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape (``GET /jobs/{id}``): lease internals left out."""
        out = {
            "id": self.id, "kind": self.kind, "status": self.status.value, "params": self.params,
            "result": self.result, "error": self.error, "attempts": self.attempts,
            "producer": self.producer, "tenant": self.tenant, "idempotency_key": self.idempotency_key,
            "callback_url": self.callback_url, "cancel_requested": self.cancel_requested,
            "worker": self.worker,
        }
        for name in ("created_at", "started_at", "finished_at", "updated_at"):
            value = getattr(self, name)
            out[name] = value.timestamp() if value else None
        return out


# --- SQL --------------------------------------------------------------------------------------------

CREATE_SQL = """
INSERT INTO jobs (id, kind, status, params, producer, tenant, idempotency_key, callback_url)
VALUES (%(id)s, %(kind)s, %(status)s, %(params)s, %(producer)s, %(tenant)s, %(idempotency_key)s,
        %(callback_url)s)
ON CONFLICT DO NOTHING
RETURNING *
"""

# CREATE_SQL with the job's first event (its `queued` status, seq 1) written in the same statement: the
# way in pays one durable round trip for the row and Postgres's copy of the event together.
CREATE_ANNOUNCED_SQL = """
WITH job AS (
  INSERT INTO jobs (id, kind, status, params, producer, tenant, idempotency_key, callback_url)
  VALUES (%(id)s, %(kind)s, %(status)s, %(params)s, %(producer)s, %(tenant)s, %(idempotency_key)s,
          %(callback_url)s)
  ON CONFLICT DO NOTHING
  RETURNING *
), first_event AS (
  INSERT INTO job_events (job_id, seq, type, data, ts)
  SELECT id, 1, %(event_type)s, %(event_data)s, %(event_ts)s FROM job
)
SELECT * FROM job
"""

# A duplicate create (same id, or same producer + idempotency key) returns the existing row.
EXISTING_SQL = """
SELECT * FROM jobs
WHERE id = %(id)s OR (producer = %(producer)s AND idempotency_key = %(idempotency_key)s)
ORDER BY (id = %(id)s) DESC LIMIT 1
"""

# A batch in one statement and one durable commit: rows come as parallel arrays (unnest), and an item whose
# (producer, idempotency key) is already taken, by an earlier job or an earlier item, is skipped here and
# read back with EXISTING_MANY_SQL.
CREATE_MANY_SQL = """
INSERT INTO jobs (id, kind, status, params, producer, tenant, idempotency_key, callback_url)
SELECT * FROM unnest(%(ids)s::text[], %(kinds)s::text[], %(statuses)s::text[], %(params)s::jsonb[],
                     %(producers)s::text[], %(tenants)s::text[], %(keys)s::text[], %(callbacks)s::text[])
ON CONFLICT DO NOTHING
RETURNING *
"""
EXISTING_MANY_SQL = "SELECT * FROM jobs WHERE producer = %(producer)s AND idempotency_key = ANY(%(keys)s)"
MARK_DISPATCHED_MANY_SQL = "UPDATE jobs SET dispatched_at = now() WHERE id = ANY(%s) AND dispatched_at IS NULL"

MARK_DISPATCHED_SQL = "UPDATE jobs SET dispatched_at = now() WHERE id = %s AND dispatched_at IS NULL"

# Take the job if it is queued (first delivery or re-queued by the reaper) or running under a lease
# that has expired. A job running under a live lease, or already finished, is not claimed: the
# caller drops the duplicate delivery.
CLAIM_SQL = """
UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = %(owner)s,
       lease_expires_at = now() + make_interval(secs => %(lease_s)s), worker = %(worker)s,
       started_at = coalesce(started_at, now()), dispatched_at = coalesce(dispatched_at, now()),
       updated_at = now()
WHERE id = %(id)s AND NOT cancel_requested AND attempts < %(max_attempts)s
  AND (status = 'queued' OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())))
RETURNING *
"""

RENEW_SQL = """
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease_s)s)
WHERE id = ANY(%(ids)s) AND lease_owner = %(owner)s AND status = 'running'
RETURNING id, cancel_requested
"""

FINISH_SQL = """
UPDATE jobs SET status = %(status)s, result = %(result)s, error = %(error)s, finished_at = now(),
       updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'running'
RETURNING *
"""

# For jobs that end without ever running: invalid messages, cancelled while queued.
FAIL_UNCLAIMED_SQL = """
UPDATE jobs SET status = %(status)s, result = %(result)s, error = %(error)s, finished_at = now(),
       updated_at = now()
WHERE id = %(id)s AND status IN ('queued', 'validating_files')
RETURNING *
"""

# Back to the queue: the worker is shutting down gracefully and gives the job up.
RELEASE_SQL = """
UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
       dispatched_at = now()
WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'running'
RETURNING *
"""

REQUEST_CANCEL_SQL = """
UPDATE jobs SET cancel_requested = true, updated_at = now(),
       status = CASE WHEN status IN ('queued', 'validating_files') THEN 'cancelled' ELSE status END,
       finished_at = CASE WHEN status IN ('queued', 'validating_files') THEN now() ELSE finished_at END
WHERE id = %(id)s AND status NOT IN ('succeeded', 'failed', 'cancelled')
RETURNING *, (status = 'cancelled') AS ended_now
"""

# The reaper: running jobs whose lease expired go back to 'queued' (their worker died), or end
# 'cancelled' if a cancel was asked for meanwhile.
REQUEUE_EXPIRED_SQL = """
UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
       finished_at = CASE WHEN cancel_requested THEN now() END,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = now(), dispatched_at = now()
WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < now()
             ORDER BY lease_expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING *
"""

# Outbox: queued jobs whose message was never sent (the producer died between insert and send).
UNDISPATCHED_SQL = """
UPDATE jobs SET dispatched_at = now()
WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND dispatched_at IS NULL
             AND created_at < now() - make_interval(secs => %(grace_s)s)
             LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING *
"""

# Re-send: queued jobs whose last send is older than the re-send delay (doubling per re-send, up to
# 16x) and that nobody claimed: their message may have died with the broker (Redis without
# persistence, a purged queue, a failover). Bumping dispatched_at in the same statement, under SKIP
# LOCKED, means two reapers never re-send one job at once; a duplicate message is dropped by the claim.
STALE_QUEUED_SQL = """
UPDATE jobs SET dispatched_at = now(), redispatches = redispatches + 1
WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND NOT cancel_requested
             AND dispatched_at < now() - make_interval(secs => %(after_s)s * power(2, least(redispatches, 4)))
             ORDER BY dispatched_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING *
"""

# Jobs started max_attempts times that would start again (queued, or running under an expired lease:
# their worker keeps dying, e.g. killed for memory) end failed instead of looping. Runs before
# REQUEUE_EXPIRED_SQL in the reaper; the claim refuses them too.
FAIL_EXHAUSTED_SQL = """
UPDATE jobs SET status = 'failed', finished_at = now(), updated_at = now(), lease_owner = NULL,
       lease_expires_at = NULL,
       error = jsonb_build_object('type', 'too_many_attempts', 'attempts', attempts,
                                  'message', format('started %%s times (limit %%s); its worker died each time',
                                                    attempts, %(max_attempts)s::int))
WHERE id IN (SELECT id FROM jobs WHERE attempts >= %(max_attempts)s AND NOT cancel_requested
             AND (status = 'queued' OR (status = 'running' AND lease_expires_at < now()))
             LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING *
"""

# Back to the queue after an infrastructure fault, counted; refused once the retries are spent. A job
# whose cancel was asked for meanwhile ends 'cancelled' instead (a queued job is never claimed again
# once cancel_requested is set).
RELEASE_FOR_RETRY_SQL = """
UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
       finished_at = CASE WHEN cancel_requested THEN now() END,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
       dispatched_at = now(), infra_retries = infra_retries + 1
WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'running' AND infra_retries < %(max_retries)s
RETURNING *
"""

# The reaper's end repair (switchyard/end_repair.py): jobs that finished at or after ``since`` and at least
# ``grace_s`` ago with no `end` in Postgres's copy of their log (their worker may have died between
# FINISH_SQL and publishing the end). Oldest first, so a caller can advance ``since`` to the last row.
# Indexes jobs_finished and job_events_end (migration 0009) keep each pass to the jobs it has not seen.
FINISHED_WITHOUT_END_SQL = """
SELECT j.*, now() - make_interval(secs => %(grace_s)s) AS scanned_until FROM jobs j
WHERE j.finished_at >= %(since)s AND j.finished_at <= now() - make_interval(secs => %(grace_s)s)
  AND j.status IN ('succeeded', 'failed', 'cancelled')
  AND NOT EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.id AND e.type = 'end')
ORDER BY j.finished_at LIMIT %(limit)s
"""
SCAN_HORIZON_SQL = "SELECT now() - make_interval(secs => %(grace_s)s) AS scanned_until"

# Backpressure: queued jobs of these kinds, counted up to the limit only (a bounded index scan).
QUEUED_DEPTH_SQL = """
SELECT count(*) AS depth FROM (SELECT 1 FROM jobs WHERE status = 'queued' AND kind = ANY(%(kinds)s)
                               LIMIT %(limit)s) AS queued
"""


def new_job_id() -> str:
    return str(uuid.uuid4())


def _one(sql: str, params: dict[str, Any], *, durable: bool = True) -> Job | None:
    with connection(durable=durable) as conn:
        row = conn.execute(sql, params).fetchone()
    return Job.from_row(row) if row else None


def _many(sql: str, params: dict[str, Any]) -> list[Job]:
    with connection() as conn:
        rows = conn.execute(sql, params).fetchall()
    return [Job.from_row(r) for r in rows]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def create(
    kind: str,
    params: dict[str, Any],
    *,
    job_id: str | None = None,
    status: JobStatus = JobStatus.QUEUED,
    producer: str = "default",
    tenant: str = "default",
    idempotency_key: str | None = None,
    callback_url: str | None = None,
    first_event: tuple[str, dict[str, Any], float] | None = None,
) -> tuple[Job, bool]:
    """Insert a job; ``(job, created)``. A repeat with the same id or idempotency key returns the first.

    ``first_event`` (type, data, ts): Postgres's copy of the new job's first event (seq 1), written in the
    same statement; the caller then publishes it with ``events.publish(..., first=True, stored=True)``.
    """
    args = {
        "id": job_id or new_job_id(), "kind": kind, "status": status.value, "params": _json(params),
        "producer": producer, "tenant": tenant, "idempotency_key": idempotency_key,
        "callback_url": callback_url,
    }
    sql = CREATE_SQL
    if first_event is not None:
        sql = CREATE_ANNOUNCED_SQL
        args.update(event_type=first_event[0], event_data=_json(first_event[1]), event_ts=first_event[2])
    with connection() as conn:
        row = conn.execute(sql, args).fetchone()
        if row:
            return Job.from_row(row), True
        row = conn.execute(EXISTING_SQL, args).fetchone()
    if row is None:  # the conflicting row vanished between the two statements (deleted); try again
        return create(kind, params, job_id=job_id, status=status, producer=producer, tenant=tenant,
                      idempotency_key=idempotency_key, callback_url=callback_url, first_event=first_event)
    return Job.from_row(row), False


@dataclass(frozen=True, slots=True)
class NewJob:
    """One item of ``create_many``."""

    kind: str
    params: dict[str, Any]
    idempotency_key: str | None = None
    callback_url: str | None = None


def create_many(items: list[NewJob], *, producer: str = "default", tenant: str = "default",
                status: JobStatus = JobStatus.QUEUED) -> list[tuple[Job, bool]]:
    """Insert a batch in one statement and one durable commit; ``(job, created)`` per item, in order. An item
    whose idempotency key is taken (by an earlier job, or an earlier item of the batch) returns that job."""
    ids = [new_job_id() for _ in items]
    args = {"ids": ids, "kinds": [i.kind for i in items], "statuses": [status.value] * len(items),
            "params": [_json(i.params) for i in items], "producers": [producer] * len(items),
            "tenants": [tenant] * len(items), "keys": [i.idempotency_key for i in items],
            "callbacks": [i.callback_url for i in items]}
    with connection() as conn:
        inserted = {row["id"]: Job.from_row(row) for row in conn.execute(CREATE_MANY_SQL, args).fetchall()}
        taken = {i.idempotency_key for i, job_id in zip(items, ids, strict=True)
                 if job_id not in inserted and i.idempotency_key is not None}
        existing = {row["idempotency_key"]: Job.from_row(row) for row in conn.execute(
            EXISTING_MANY_SQL, {"producer": producer, "keys": list(taken)}).fetchall()} if taken else {}
    out: list[tuple[Job, bool]] = []
    for item, job_id in zip(items, ids, strict=True):
        if job_id in inserted:
            out.append((inserted[job_id], True))
        elif item.idempotency_key in existing:
            out.append((existing[item.idempotency_key], False))
        else:  # the conflicting row vanished meanwhile (deleted): rare, so one more round for the rest
            out.append(create(item.kind, item.params, producer=producer, tenant=tenant, status=status,
                              idempotency_key=item.idempotency_key, callback_url=item.callback_url))
    return out


def mark_dispatched_many(job_ids: list[str]) -> None:
    # Not durable, like mark_dispatched: a lost mark only makes the outbox sweep send a job again.
    with connection(durable=False) as conn:
        conn.execute(MARK_DISPATCHED_MANY_SQL, (job_ids,))


def get(job_id: str) -> Job:
    job = _one("SELECT * FROM jobs WHERE id = %(id)s", {"id": job_id})
    if job is None:
        raise JobNotFoundError(job_id)
    return job


def find(job_id: str) -> Job | None:
    return _one("SELECT * FROM jobs WHERE id = %(id)s", {"id": job_id})


def list_jobs(
    *, kind: str | None = None, status: str | None = None, tenant: str | None = None,
    limit: int = 50, before: datetime | None = None,
) -> list[Job]:
    return _many(
        "SELECT * FROM jobs WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " AND (%(status)s::text IS NULL OR status = %(status)s)"
        " AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)"
        " AND (%(before)s::timestamptz IS NULL OR created_at < %(before)s)"
        " ORDER BY created_at DESC LIMIT %(limit)s",
        {"kind": kind, "status": status, "tenant": tenant, "limit": limit, "before": before},
    )


def mark_dispatched(job_id: str, *, wait: bool = True) -> None:
    """Note that the job's message was sent. Not durable: if Postgres loses this mark in a crash, the
    outbox sweep sends the job again, and a duplicate message is dropped by the claim.

    ``wait=False`` leaves it to this process's ledger writer (switchyard/ledger_writer.py, ``defer``):
    nobody reads the mark for ``dispatch_grace_s`` (the outbox sweep), and the claim sets it too, so the
    producer need not pay a round trip for it; concurrent producers' marks share one commit."""
    if not wait:
        ledger_writer().defer(MARK_DISPATCHED_SQL, (job_id,))
        return
    with connection(durable=False) as conn:
        conn.execute(MARK_DISPATCHED_SQL, (job_id,))


def claim(job_id: str, owner: str, worker: str, lease_s: float, *, max_attempts: int | None = None) -> Job | None:
    # Not durable: a claim lost in a Postgres crash leaves the job queued; our next heartbeat then finds
    # no lease (LeaseLost) and the job runs again from the queue. Finishing, by contrast, is durable.
    # A job already started max_attempts times is not claimed; the reaper ends it (fail_exhausted).
    if max_attempts is None:
        from switchyard.config import get_settings

        max_attempts = get_settings().max_attempts
    return _one(CLAIM_SQL, {"id": job_id, "owner": owner, "worker": worker, "lease_s": lease_s,
                            "max_attempts": max_attempts}, durable=False)


def renew_leases(job_ids: list[str], owner: str, lease_s: float) -> dict[str, bool]:
    """Extend our leases; ``{job_id: cancel_requested}`` for the jobs we still hold."""
    if not job_ids:
        return {}
    with connection(durable=False) as conn:
        rows = conn.execute(RENEW_SQL, {"ids": job_ids, "owner": owner, "lease_s": lease_s}).fetchall()
    return {r["id"]: r["cancel_requested"] for r in rows}


def finish(job_id: str, owner: str, status: JobStatus, *, result: Any = None,
           error: dict[str, Any] | None = None) -> Job | None:
    """End a running job we hold the lease of. ``None`` if we no longer hold it.

    Durable, and committed together with the finishes of this process's other jobs that end meanwhile
    (group commit: switchyard.ledger_writer); returns once this one's commit is on disk."""
    row = ledger_writer().write(FINISH_SQL, {"id": job_id, "owner": owner, "status": status.value,
                                             "result": _json(result), "error": _json(error)})
    return Job.from_row(row) if row else None


def end_unclaimed(job_id: str, status: JobStatus, *, error: dict[str, Any] | None = None,
                  result: Any = None) -> Job | None:
    return _one(FAIL_UNCLAIMED_SQL, {"id": job_id, "status": status.value, "error": _json(error),
                                     "result": _json(result)})


def release(job_id: str, owner: str) -> Job | None:
    return _one(RELEASE_SQL, {"id": job_id, "owner": owner})


def request_cancel(job_id: str) -> tuple[Job, bool]:
    """Flag a job for cancellation; ``(job, ended_now)``: a queued job ends at once."""
    with connection() as conn:
        row = conn.execute(REQUEST_CANCEL_SQL, {"id": job_id}).fetchone()
    if row is None:
        return get(job_id), False
    ended_now = row.pop("ended_now")
    return Job.from_row(row), ended_now


def requeue_expired(limit: int = 100) -> list[Job]:
    return _many(REQUEUE_EXPIRED_SQL, {"limit": limit})


def take_undispatched(grace_s: float, limit: int = 100) -> list[Job]:
    return _many(UNDISPATCHED_SQL, {"grace_s": grace_s, "limit": limit})


def set_status(job_id: str, status: JobStatus) -> Job | None:
    """Move a not-yet-running job between ``validating_files`` and ``queued``."""
    return _one(
        "UPDATE jobs SET status = %(status)s, updated_at = now() WHERE id = %(id)s"
        " AND status IN ('validating_files', 'queued') RETURNING *",
        {"id": job_id, "status": status.value},
    )


def take_stale_queued(after_s: float, limit: int = 100) -> list[Job]:
    """Queued jobs to send again (nobody claimed them in time); each one's re-send is counted."""
    return _many(STALE_QUEUED_SQL, {"after_s": after_s, "limit": limit})


def fail_exhausted(max_attempts: int, limit: int = 100) -> list[Job]:
    """End ``failed`` (``too_many_attempts``) the jobs that would otherwise start a further time."""
    return _many(FAIL_EXHAUSTED_SQL, {"max_attempts": max_attempts, "limit": limit})


def release_for_retry(job_id: str, owner: str, max_retries: int) -> Job | None:
    """Queue a job we hold again after an infrastructure fault; ``None`` if we lost the lease or its
    retries are spent."""
    return _one(RELEASE_FOR_RETRY_SQL, {"id": job_id, "owner": owner, "max_retries": max_retries})


def finished_without_end(since: datetime, grace_s: float, limit: int = 100) -> tuple[list[Job], datetime]:
    """Jobs that ended after ``since`` and at least ``grace_s`` ago whose `end` is not in Postgres, oldest
    first; and how far the scan has looked (pass it as the next ``since``)."""
    args = {"since": since, "grace_s": grace_s, "limit": limit}
    with connection() as conn:
        rows = conn.execute(FINISHED_WITHOUT_END_SQL, args).fetchall()
        if len(rows) == limit:  # more may follow: look again from the last one seen
            return [Job.from_row(r) for r in rows], rows[-1]["finished_at"]
        until = rows[0]["scanned_until"] if rows else conn.execute(SCAN_HORIZON_SQL, args).fetchone()["scanned_until"]
    return [Job.from_row(r) for r in rows], until


def queued_depth(kinds: list[str], limit: int) -> int:
    """How many jobs of ``kinds`` are queued, counting no further than ``limit``."""
    with connection() as conn:
        return conn.execute(QUEUED_DEPTH_SQL, {"kinds": kinds, "limit": limit}).fetchone()["depth"]


# --- reads for /readyz and /metrics (switchyard.api.health) -------------------------------------------
# They take the caller's connection: the API reads with a short pool timeout of its own.

LEDGER_EXISTS_SQL = "SELECT to_regclass('jobs') IS NOT NULL AS ok"
JOBS_BY_KIND_STATUS_SQL = "SELECT kind, status, count(*) AS n FROM jobs GROUP BY kind, status"
_DURATION = "extract(epoch FROM finished_at - started_at)"


def job_durations_sql(buckets: tuple[float, ...]) -> str:
    """Per kind and final status: count, total seconds, and how many took <= each bucket bound (column
    ``b<i>``). The FILTER clauses come from numeric bucket bounds, never from input."""
    return (
        f"SELECT kind, status, count(*) AS n, coalesce(sum({_DURATION}), 0) AS total, "
        + ", ".join(f"count(*) FILTER (WHERE {_DURATION} <= {float(b)!r}) AS b{i}" for i, b in enumerate(buckets))
        + " FROM jobs WHERE finished_at IS NOT NULL AND started_at IS NOT NULL"
          " AND status IN ('succeeded', 'failed', 'cancelled') GROUP BY kind, status"
    )


def ledger_exists(conn: Any) -> bool:
    """Whether the jobs table exists (the database is migrated)."""
    return conn.execute(LEDGER_EXISTS_SQL).fetchone()["ok"]


def count_by_kind_status(conn: Any) -> list[dict[str, Any]]:
    """Rows of kind, status, n."""
    return conn.execute(JOBS_BY_KIND_STATUS_SQL).fetchall()


def duration_histograms(conn: Any, buckets: tuple[float, ...]) -> list[dict[str, Any]]:
    """Rows of kind, status, n, total and b0..bN (cumulative counts per bucket bound) of ended jobs."""
    return conn.execute(job_durations_sql(buckets)).fetchall()
