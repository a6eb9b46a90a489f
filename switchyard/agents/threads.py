"""Threads and runs in Postgres: one run at a time per thread, and the multitask strategies.

A run takes its thread by setting ``agent_threads.active_run`` (row-locked). When the thread is held by
another live run, the new run's ``multitask_strategy`` decides:

- ``reject``: the new run fails with ``ThreadBusyError``;
- ``enqueue``: it waits (first come, first served) until the thread is free;
- ``interrupt``: it cancels the active run, which stops at its next step keeping its checkpoints, then
  continues the thread from there;
- ``rollback``: like ``interrupt``, then deletes what the cancelled run wrote, so the thread is as it
  was before that run began.

A redelivered run (its worker died) finds itself still holding the thread and carries on.

A run has no status of its own here: the ledger's job row is the one source of truth, and
``agent_run_states`` (migrations/0009) reads a run's LangGraph status off it. ``agent_runs`` keeps only what
the run alone knows: its thread, graph, strategy, metadata, base checkpoint, usage, when it held the thread
and whether it was rolled back. The agent pool's ``ThreadHooks`` (``switchyard/agents/thread_hooks.py``) call
``take``/``release`` around each run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from switchyard.db import connection, pipelined_transaction
from switchyard.errors import NotFoundError, SwitchyardError

POLL_S = 0.1


class ThreadBusyError(SwitchyardError):
    """The thread already has a run in progress and the new run's strategy is ``reject``."""


class ThreadNotFoundError(NotFoundError):
    """No thread has that id."""


# --- SQL ---------------------------------------------------------------------------------------------

ENSURE_THREAD_SQL = """
INSERT INTO agent_threads (thread_id, tenant, graph, metadata) VALUES (%(thread_id)s, %(tenant)s, %(graph)s,
       %(metadata)s)
ON CONFLICT (thread_id) DO UPDATE SET graph = coalesce(agent_threads.graph, EXCLUDED.graph)
RETURNING *
"""
RECORD_RUN_SQL = """
INSERT INTO agent_runs (run_id, thread_id, graph, tenant, multitask_strategy, metadata)
VALUES (%(run_id)s, %(thread_id)s, %(graph)s, %(tenant)s, %(strategy)s, %(metadata)s)
ON CONFLICT (run_id) DO NOTHING
"""
# A stateless run's new thread and the run's row, in one statement: nobody else knows the thread yet, so
# there is no holder to lock out or wait for.
RESERVE_ON_NEW_THREAD_SQL = """
WITH thread AS (
    INSERT INTO agent_threads (thread_id, tenant, graph) VALUES (%(thread_id)s, %(tenant)s, %(graph)s)
)
INSERT INTO agent_runs (run_id, thread_id, graph, tenant, multitask_strategy, metadata)
VALUES (%(run_id)s, %(thread_id)s, %(graph)s, %(tenant)s, %(strategy)s, %(metadata)s)
"""
# The worker's copy of ensure_thread, for a run whose thread the API did not create (a raw producer): writes
# nothing to an existing row that already names its graph, and returns nothing (the lock below reads it).
ENTER_THREAD_SQL = """
INSERT INTO agent_threads (thread_id, tenant, graph) VALUES (%(thread_id)s, %(tenant)s, %(graph)s)
ON CONFLICT (thread_id) DO UPDATE SET graph = EXCLUDED.graph WHERE agent_threads.graph IS NULL
"""
# The thread's tenant and holder, and whether its job is still live in the ledger (a holder whose job ended
# without releasing the thread, cancelled while queued say, holds nothing).
LOCK_THREAD_SQL = """
SELECT t.tenant, t.active_run,
       j.status IS NOT NULL AND j.status NOT IN ('succeeded', 'failed', 'cancelled') AS active_live
FROM agent_threads t LEFT JOIN jobs j ON j.id = t.active_run
WHERE t.thread_id = %(thread_id)s FOR UPDATE OF t
"""
GET_THREAD_SQL = "SELECT * FROM agent_threads WHERE thread_id = %s"
DELETE_THREAD_SQL = "DELETE FROM agent_threads WHERE thread_id = %s"
SEARCH_THREADS_SQL = (
    "SELECT * FROM agent_threads WHERE tenant = %(tenant)s AND metadata @> %(metadata)s"
    " AND (%(status)s::text IS NULL OR status = %(status)s)"
    " ORDER BY updated_at DESC LIMIT %(limit)s OFFSET %(offset)s"
)
LOCK_ACTIVE_RUN_SQL = "SELECT active_run FROM agent_threads WHERE thread_id = %s FOR UPDATE"
# Runs with their status from the ledger (the view agent_run_states).
GET_RUN_SQL = "SELECT * FROM agent_run_states WHERE run_id = %s"
LIST_RUNS_SQL = "SELECT * FROM agent_run_states WHERE thread_id = %s ORDER BY created_at DESC LIMIT %s"
FORGET_RUN_SQL = "DELETE FROM agent_runs WHERE run_id = %s AND NOT EXISTS (SELECT 1 FROM jobs WHERE id = %s)"
# A run that holds or waits for the thread: its job has not ended. A run
# the API recorded whose job is not written yet (the job row follows the run row by one round trip) counts
# for a short while, so that an API that died in between does not hold the thread forever.
BUSY_RUN_SQL = """
SELECT r.run_id FROM agent_runs r LEFT JOIN jobs j ON j.id = r.run_id
WHERE r.thread_id = %(thread_id)s AND r.run_id <> %(run_id)s
  AND ((j.id IS NULL AND r.created_at > now() - make_interval(secs => %(unsent_s)s))
       OR j.status NOT IN ('succeeded', 'failed', 'cancelled'))
ORDER BY r.created_at LIMIT 1
"""
UNSENT_RUN_S = 30.0
# "reject": the run's row only if no other run is busy on the thread (sent after the lock, so its snapshot
# sees every run recorded before the lock was granted).
RECORD_RUN_UNLESS_BUSY_SQL = f"""
INSERT INTO agent_runs (run_id, thread_id, graph, tenant, multitask_strategy, metadata)
SELECT %(run_id)s, %(thread_id)s, %(graph)s, %(tenant)s, %(strategy)s, %(metadata)s
WHERE NOT EXISTS ({BUSY_RUN_SQL})
ON CONFLICT (run_id) DO NOTHING
"""
INSERT_NOTE_SQL = "INSERT INTO agent_notes (thread_id, text, tenant) VALUES (%s, %s, %s) RETURNING id"
# Enqueued runs go first come, first served: an older run still waiting on the thread (it never took it,
# and its job has not ended) goes first.
EARLIER_WAITING_SQL = """
SELECT r.run_id FROM agent_runs r JOIN jobs j ON j.id = r.run_id
WHERE r.thread_id = %(thread_id)s AND r.started_at IS NULL AND r.run_id <> %(run_id)s
  AND r.created_at < (SELECT created_at FROM agent_runs WHERE run_id = %(run_id)s)
  AND j.status NOT IN ('succeeded', 'failed', 'cancelled')
LIMIT 1
"""
TAKE_THREAD_SQL = """
UPDATE agent_threads SET active_run = %(run_id)s, status = 'busy', graph = %(graph)s, updated_at = now()
WHERE thread_id = %(thread_id)s
"""
# clock_timestamp(), not now(): the transaction may have begun before the previous holder's release
# committed (it waited on the row lock), and the run took the thread after that release.
START_RUN_SQL = """
UPDATE agent_runs SET started_at = coalesce(started_at, clock_timestamp()), updated_at = now()
WHERE run_id = %(run_id)s
"""
# The run's base: the thread's head checkpoint (LangGraph's table, newest root checkpoint first, as
# PostgresSaver.get_tuple reads it) as the run takes the thread. A redelivered run (attempt > 1) that recorded
# its base before keeps it: if the head moved past it, the run wrote checkpoints of its own and resumes.
RECORD_BASE_SQL = """
UPDATE agent_runs r
SET base_checkpoint_id = CASE WHEN o.resumable THEN r.base_checkpoint_id ELSE h.head END, base_recorded = true
FROM (SELECT base_recorded AND %(attempt)s > 1 AS resumable FROM agent_runs WHERE run_id = %(run_id)s) o,
     (SELECT (SELECT checkpoint_id FROM checkpoints WHERE thread_id = %(thread_id)s AND checkpoint_ns = ''
              ORDER BY checkpoint_id DESC LIMIT 1) AS head) h
WHERE r.run_id = %(run_id)s
RETURNING h.head, r.base_checkpoint_id AS base, o.resumable
"""
# One statement: the run's usage and end of tenure, and the thread given back.
RELEASE_SQL = """
WITH released AS (
    UPDATE agent_threads SET active_run = NULL, status = %(status)s, updated_at = now()
    WHERE thread_id = %(thread_id)s AND (active_run = %(run_id)s OR active_run IS NULL)
)
UPDATE agent_runs SET usage = %(usage)s, cost_usd = %(cost)s, ttft_ms = %(ttft)s, finished_at = now(),
       updated_at = now()
WHERE run_id = %(run_id)s
"""
ROLLED_BACK_SQL = "UPDATE agent_runs SET rolled_back_at = now(), updated_at = now() WHERE run_id = %s"


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


@contextmanager
def _pipelined_transaction() -> Iterator[psycopg.Connection]:
    """``db.pipelined_transaction`` on a pooled connection: the results of statements sent after the last
    read are there once the block has ended.

    Its commit does not wait for the WAL flush (``connection(durable=False)``). Every use is followed by a
    durable commit that depends on it (the API's reservation by the job's row, ``dispatch.enqueue``; the
    worker's take by the job's finish), and Postgres flushes its WAL in order: once that later commit is
    durable, so is this one. A crash before it loses both, which is where the caller was before it began
    (no job recorded; a job that never finished, run again with its thread still free or still its own)."""
    with connection(durable=False) as conn, pipelined_transaction(conn):
        yield conn


def ensure_thread(thread_id: str, *, tenant: str = "default", graph: str | None = None,
                  metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    with connection() as conn:
        return conn.execute(ENSURE_THREAD_SQL, {"thread_id": thread_id, "tenant": tenant, "graph": graph,
                                                "metadata": _json(metadata or {})}).fetchone()


def get_thread(thread_id: str) -> dict[str, Any]:
    with connection() as conn:
        row = conn.execute(GET_THREAD_SQL, (thread_id,)).fetchone()
    if row is None:
        raise ThreadNotFoundError(thread_id)
    return row


def search_threads(tenant: str, *, metadata: dict[str, Any] | None = None, status: str | None = None,
                   limit: int = 10, offset: int = 0) -> list[dict[str, Any]]:
    """The tenant's threads whose metadata contains ``metadata`` (and of ``status``, if given), newest first."""
    with connection() as conn:
        return conn.execute(SEARCH_THREADS_SQL, {"tenant": tenant, "metadata": json.dumps(metadata or {}),
                                                 "status": status, "limit": limit, "offset": offset}).fetchall()


def delete_thread(thread_id: str) -> None:
    """Forget the thread's row (its checkpoints are the checkpointer's to delete)."""
    with connection() as conn:
        conn.execute(DELETE_THREAD_SQL, (thread_id,))


@contextmanager
def locked_thread(thread_id: str) -> Iterator[str | None]:
    """Hold the thread's row locked for the block, so no run can take the thread meanwhile; yields the
    run that holds it now, if any."""
    with connection() as conn, conn.transaction():
        row = conn.execute(LOCK_ACTIVE_RUN_SQL, (thread_id,)).fetchone()
        yield row["active_run"] if row else None


def save_note(thread_id: str, text: str, tenant: str | None) -> int:
    """Store a note for the user (the ``save_note`` tool); its id."""
    with connection() as conn:
        return conn.execute(INSERT_NOTE_SQL, (thread_id, text, tenant)).fetchone()["id"]


def reserve_run(run_id: str, thread_id: str, graph: str, *, tenant: str = "default", strategy: str = "enqueue",
                metadata: dict[str, Any] | None = None) -> None:
    """Record a new run under the thread's row lock. With ``strategy="reject"`` a thread that has another run
    pending or running refuses it (``ThreadBusyError``, nothing recorded): the check and the insert share one
    transaction on the locked row, so of two concurrent creates on an idle thread only one passes. Its
    statements and the commit go out in one round trip: each one after the lock reads a snapshot taken once
    the lock is granted."""
    args = {"run_id": run_id, "thread_id": thread_id, "graph": graph, "tenant": tenant, "strategy": strategy,
            "metadata": _json(metadata or {}), "unsent_s": UNSENT_RUN_S}
    busy = None
    with _pipelined_transaction() as conn:
        conn.execute(LOCK_ACTIVE_RUN_SQL, (thread_id,))
        if strategy == "reject":
            busy = conn.execute(BUSY_RUN_SQL, args)
            conn.execute(RECORD_RUN_UNLESS_BUSY_SQL, args)  # records nothing if BUSY_RUN_SQL found a run
        else:
            conn.execute(RECORD_RUN_SQL, args)
    if busy is not None and (holder := busy.fetchone()):
        raise ThreadBusyError(f"thread {thread_id} is busy with run {holder['run_id']} (multitask_strategy=reject)")


def reserve_run_on_new_thread(run_id: str, thread_id: str, graph: str, *, tenant: str = "default",
                              strategy: str = "enqueue", metadata: dict[str, Any] | None = None) -> None:
    """Create a thread (an id nobody has used) with ``run_id`` recorded on it, in one statement: a stateless
    run (``POST /runs/wait``), where there is no other run to check or lock out. Committed without waiting
    for the WAL flush, as ``_pipelined_transaction``: the job's durable row follows and flushes it."""
    with connection(durable=False) as conn:
        conn.execute(RESERVE_ON_NEW_THREAD_SQL, {"run_id": run_id, "thread_id": thread_id, "graph": graph,
                                                 "tenant": tenant, "strategy": strategy,
                                                 "metadata": _json(metadata or {})})


def forget_run(run_id: str) -> None:
    """Drop a run the API recorded but whose job was never recorded (refused params, a full queue), so it
    holds no thread."""
    with connection() as conn:
        conn.execute(FORGET_RUN_SQL, (run_id, run_id))


def get_run(run_id: str) -> dict[str, Any] | None:
    """The run with its status from the ledger (``agent_run_states``)."""
    with connection() as conn:
        return conn.execute(GET_RUN_SQL, (run_id,)).fetchone()


def list_runs(thread_id: str, limit: int = 50) -> list[dict[str, Any]]:
    with connection() as conn:
        return conn.execute(LIST_RUNS_SQL, (thread_id, limit)).fetchall()


@dataclass(frozen=True, slots=True)
class Taken:
    """What taking a thread found."""

    displaced: str | None = None  # the run this one cancelled (interrupt, rollback)
    head: str | None = None  # the thread's latest root checkpoint once taken (None: a new thread)
    resuming: bool = False  # a redelivered run whose own checkpoints are there: continue, don't restart


def take_thread(run_id: str, thread_id: str, graph: str, strategy: str, *, wait: Callable[[float], None],
                cancel: Callable[[str], Any], tenant: str | None = None, attempt: int | None = None) -> Taken:
    """Take the thread for ``run_id`` under ``strategy``.

    ``wait(seconds)`` must honour the job's own stop requests (``JobContext.sleep``), ``cancel(job_id)``
    stops another run (``dispatch.cancel``). A ``rollback`` deletes the displaced run's checkpoints.

    The agent worker's way in (``ThreadHooks``), with ``tenant`` and ``attempt``: the thread is created if
    missing (``ThreadNotFoundError`` if it is another tenant's: nothing is written), the run is recorded,
    and once taken the run's base checkpoint is recorded (``RECORD_BASE_SQL``), all in the transaction that
    locks the thread: two round trips and one commit when the thread is free.
    """
    args = {"run_id": run_id, "thread_id": thread_id, "graph": graph, "tenant": tenant, "strategy": strategy,
            "metadata": "{}", "attempt": attempt or 1}
    entering = tenant is not None
    displaced: str | None = None
    busy_with: str | None = None
    based = None  # the cursor of RECORD_BASE_SQL, read once its transaction has committed
    while True:
        with _pipelined_transaction() as conn:
            if entering:
                conn.execute(ENTER_THREAD_SQL, args)
            locked = conn.execute(LOCK_THREAD_SQL, args)
            if entering:  # rolled back with the rest if the thread is another tenant's
                conn.execute(RECORD_RUN_SQL, args)
            # Enqueued runs go first come, first served (only read when the thread is free).
            earlier = conn.execute(EARLIER_WAITING_SQL, args) if strategy == "enqueue" else None
            thread = locked.fetchone()  # the round trip for all of the above
            if entering and thread["tenant"] != tenant:
                # Another tenant's thread is, to this run, a thread that does not exist.
                raise ThreadNotFoundError(f"no thread {thread_id!r} for tenant {tenant!r}")
            entering = False
            active = thread["active_run"] if thread else None
            if active and active != run_id and not thread["active_live"]:
                active = None  # its job ended without releasing the thread (cancelled while queued, say)
            if active in (None, run_id):
                if earlier is None or earlier.fetchone() is None:
                    conn.execute(TAKE_THREAD_SQL, args)
                    conn.execute(START_RUN_SQL, args)
                    if attempt is not None and not (strategy == "rollback" and displaced):
                        based = conn.execute(RECORD_BASE_SQL, args)
                    break  # commits
            elif strategy == "reject":
                busy_with = active  # the run's row stays recorded: it reads "rejected" (agent_run_states)
                break
            elif strategy in ("interrupt", "rollback") and displaced != active:
                displaced = active
                cancel(active)
        wait(POLL_S)
    if busy_with is not None:  # the job fails with ThreadBusyError: its run reads "rejected"
        raise ThreadBusyError(f"thread {thread_id} is busy with run {busy_with} (multitask_strategy=reject)")
    if strategy == "rollback" and displaced:
        from switchyard.agents.checkpointer import delete_after

        base = (get_run(displaced) or {}).get("base_checkpoint_id")
        delete_after(thread_id, base)
        mark_rolled_back(displaced)
        if attempt is not None:  # the base is the head once the displaced run's checkpoints are gone
            head, resuming = record_base(run_id, thread_id, attempt)
            return Taken(displaced, head, resuming)
    return Taken(displaced, *_base_found(based.fetchone())) if based is not None else Taken(displaced)


def record_base(run_id: str, thread_id: str, attempt: int) -> tuple[str | None, bool]:
    """Record the run's base checkpoint (``RECORD_BASE_SQL``) for a run that holds its thread:
    ``(the thread's head, whether the run resumes from it)``."""
    with connection() as conn:
        row = conn.execute(RECORD_BASE_SQL, {"run_id": run_id, "thread_id": thread_id, "attempt": attempt}).fetchone()
    return _base_found(row)


def _base_found(row: dict[str, Any] | None) -> tuple[str | None, bool]:
    """RECORD_BASE_SQL's row → (head, resuming): a redelivered run resumes when the head moved past its base."""
    if row is None:
        return None, False
    return row["head"], bool(row["resumable"]) and row["head"] != row["base"]


def mark_rolled_back(run_id: str) -> None:
    """Record that the run's checkpoints were deleted: a cancelled run then reads ``rolled_back``."""
    with connection() as conn:
        conn.execute(ROLLED_BACK_SQL, (run_id,))


def release(run_id: str, thread_id: str, thread_status: str, *, usage: dict[str, Any] | None = None,
            wait: bool = True) -> None:
    """Give the thread up, recording what the run used; the thread's status becomes ``idle``,
    ``interrupted`` or ``error``.

    ``wait=False`` (the agent pool's hooks) leaves the write to this process's ledger writer
    (``switchyard.ledger_writer``, ``defer``): it rides the job's finish, the durable commit that follows at
    once, instead of paying a commit of its own. Nothing is lost if the worker dies first: the job is not
    finished either, and a redelivered run finds itself still holding the thread; a holder whose job has
    ended holds nothing (``LOCK_THREAD_SQL``)."""
    usage = usage or {}
    args = {"run_id": run_id, "thread_id": thread_id, "status": thread_status, "usage": _json(usage or None),
            "cost": usage.get("cost_usd"), "ttft": usage.get("ttft_ms")}
    if not wait:
        from switchyard.ledger_writer import ledger_writer

        ledger_writer().defer(RELEASE_SQL, args)
        return
    with connection() as conn:
        conn.execute(RELEASE_SQL, args)
