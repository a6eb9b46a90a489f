"""The reaper's repair of a lost `end`: a job final in the ledger whose event stream never ended.

A worker killed between committing a job's final status (``jobs.finish``) and publishing its `end`
(``runner.announce_end``) leaves subscribers waiting forever. The reaper looks at each job that finished
since its previous pass and at least ``lease_s`` ago (a live worker publishes its end within
milliseconds; a lease is how long the platform waits before it calls a silent worker dead) and, where
Postgres's copy of the log has no `end`:

- if Redis's log has one (the worker died between Redis and Postgres), that same event is copied to
  Postgres: a subscriber that saw it sees it again under the same ``seq``, never a second `end`;
- else the end is announced from the ledger row (``announce_end``: the final `status` and `end`, and the
  callback the dead worker never scheduled).

One reaper per job: a short Redis lock (``SET NX``), as several control workers run the reaper at once.
Subscribers stop at the first `end` they read, so even a worker that froze for longer than a lease after
finishing and then published its own end could not make one subscriber see two.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

from switchyard import constants, events, jobs
from switchyard.config import get_settings
from switchyard.jobs import Job
from switchyard.redis_conn import get_redis

log = logging.getLogger("switchyard.end_repair")

# A process's first pass looks this far back; later passes start where the previous one stopped.
FIRST_LOOKBACK_S = 3600
LOCK_TTL_S = 60

_since: datetime | None = None
_pass = threading.Lock()  # the control pool runs tasks in threads: one pass at a time per process


def repair_missing_ends(*, grace_s: float | None = None, limit: int = 100) -> int:
    """One pass; returns how many jobs got their `end` back. A pass that fails (Redis or Postgres down)
    does not advance, so the next one looks at the same jobs again."""
    global _since
    if not _pass.acquire(blocking=False):
        return 0
    try:
        grace = get_settings().lease_s if grace_s is None else grace_s
        since = _since or datetime.now(UTC) - timedelta(seconds=FIRST_LOOKBACK_S)
        found, scanned_until = jobs.finished_without_end(since, grace, limit)
        repaired = sum(_repair(job) for job in found)
        _since = scanned_until
        return repaired
    finally:
        _pass.release()


def _repair(job: Job) -> bool:
    if not get_redis().set(constants.end_repair_lock_key(job.id), "1", nx=True, ex=LOCK_TTL_S):
        return False  # another reaper has it
    logged_end = next((e for e in events.replay(job.id) if e.is_end), None)
    if logged_end is not None:
        log.warning("job %s: its end (seq %d) reached Redis but not Postgres; copied", job.id, logged_end.seq)
        _keep(logged_end)
        if job.callback_url:
            from switchyard.outbound_webhooks import schedule_callback

            schedule_callback(job)
        return True
    from switchyard.runner import announce_end

    log.warning("job %s ended %s at %s but its end was never published (its worker died?); announcing it",
                job.id, job.status.value, job.finished_at)
    announce_end(job)
    return True


def _keep(event: events.Event) -> None:
    from switchyard.db import connection

    with connection() as conn:
        conn.execute(events.PERSIST_EVENTS_SQL,
                     (event.job_id, event.seq, event.type, json.dumps(event.data, default=str), event.ts))
