"""Group commit per process: the ledger writes of concurrent jobs share one transaction and one commit.

A worker running several jobs at once (a threads pool, the agent pool) would otherwise pay a round trip
and, for a durable write, a WAL flush per write. Here the writes queue up, and whoever finds no commit in
flight leads one: it takes everything queued, sends it as one pipelined transaction and wakes the writers
it carried. A lone write is committed by its own thread at once (no hand-off, no timer); writes that
arrive while a commit is in flight ride the next one together.

Two kinds of write:

- ``write``: waited for, durable (a job's finish: its message is acknowledged only after it returns);
- ``defer``: nobody waits (Postgres's copy of an event Redis already holds, such as a job's
  `running` status). It rides the next waited commit of this process, or, if none comes within
  ``DEFER_LINGER_S``, a background thread commits it; a batch of deferred writes only commits
  asynchronously (``synchronous_commit = off``). A failure is retried for up to ``ledger_retry_s``.

A batch is one transaction: a ``kill -9`` mid-commit loses all of it and none of the rest, so each job
whose write it carried is exactly where it was before (not finished, not acknowledged: its lease expires
and the reaper queues it again), never half-written, never finished twice.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg_pool
from psycopg.pq import ExecStatus

from switchyard._singleton import PerProcess
from switchyard.config import get_settings
from switchyard.db import connection, pipelined_transaction

log = logging.getLogger("switchyard.ledger_writer")

TUPLES_OK = ExecStatus.TUPLES_OK
# Most writes in one transaction (a bigger backlog is committed in several).
MAX_BATCH = 256
# How long a deferred write waits for a waited commit to carry it before the background thread does.
DEFER_LINGER_S = 0.05
# A lost connection, a restart: retried (deferred writes) or raised to the waiting caller, which retries.
# (psycopg_pool.PoolTimeout is an OperationalError too.)
_BACKEND_DOWN = (psycopg.OperationalError, psycopg_pool.PoolTimeout)
# OperationalError subclasses that are the statement's own doing, not the connection's.
_STATEMENT_FAULTS = (psycopg.errors.QueryCanceled,)


@dataclass(slots=True, eq=False)
class _Write:
    sql: str
    params: Sequence[Any] | dict[str, Any]
    waited: bool  # a waited write returns its first row; a deferred one returns nothing
    due_at: float = field(default_factory=time.monotonic)  # deferred: when the background thread takes it
    done: bool = False
    row: dict[str, Any] | None = None
    error: BaseException | None = None
    give_up_at: float | None = None  # deferred writes: retried until then

    def settle(self, row: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        self.row, self.error, self.done = row, error, True


@dataclass
class Stats:
    """What this process's writer did (for tests and the benchmark)."""

    writes: int = 0
    batches: int = 0
    largest: int = 0


class GroupCommit:
    """This process's ledger writer; ``ledger_writer()`` hands out the one per process."""

    def __init__(self, *, max_batch: int = MAX_BATCH, linger_s: float = DEFER_LINGER_S):
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.stats = Stats()
        self._cond = threading.Condition()
        self._queue: list[_Write] = []
        self._committing = False
        self._flusher: threading.Thread | None = None

    def write(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> dict[str, Any] | None:
        """Run one statement in the next durable group commit; its first row (``RETURNING``) or ``None``.
        Raises what the statement raised (alone: a bad write never fails its batch-mates)."""
        mine = _Write(sql, params, waited=True)
        with self._cond:
            self._queue.append(mine)
            while not mine.done:
                if self._committing:
                    self._cond.wait()
                else:
                    self._lead()
        if mine.error is not None:
            raise mine.error
        return mine.row

    def defer(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
        """Queue a write nobody waits for (see the module docstring)."""
        with self._cond:
            self._queue.append(_Write(sql, params, waited=False, due_at=time.monotonic() + self.linger_s))
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_deferred, name="switchyard-ledger-writer",
                                                 daemon=True)
                self._flusher.start()
            self._cond.notify_all()

    def queued(self) -> int:
        """Writes waiting for a commit (not counting the one in flight)."""
        with self._cond:
            return len(self._queue)

    def flush(self, timeout: float = 10.0) -> bool:
        """Commit every queued write now (process exit, tests); ``False`` if some are still queued."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue and time.monotonic() < deadline:
                if self._committing:
                    self._cond.wait(0.05)
                else:
                    self._lead()
            return not self._queue

    # --- the leader (called with the condition's lock held; released while it commits) ---------------------

    def _lead(self) -> None:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
        self._committing = True
        self._cond.release()
        retry: list[_Write] = []
        try:
            retry = self._commit(batch)
        except Exception as exc:
            # Not a database error (no database URL at exit, a bug): every write of the batch, waited or
            # deferred, gets it, so no caller waits for a commit that will never come and the background
            # flusher lives on for the next writes.
            log.exception("ledger batch of %d writes failed", len(batch))
            for write in batch:
                if not write.done:
                    write.settle(error=exc)
        finally:
            self._cond.acquire()
            self._committing = False
            self._queue[:0] = retry  # deferred writes to try again, first in line
            self._cond.notify_all()

    def _commit(self, batch: list[_Write]) -> list[_Write]:
        """Commit ``batch`` as one transaction, settling each write; returns deferred writes to retry."""
        try:
            rows = self._execute(batch)
        except psycopg.Error as exc:
            if isinstance(exc, _BACKEND_DOWN) and not isinstance(exc, _STATEMENT_FAULTS):
                return self._failed(batch, exc)
            if len(batch) > 1:  # one statement took the transaction with it: each alone, so only it fails
                return [retry for write in batch for retry in self._commit([write])]
            if not batch[0].waited:
                log.error("deferred ledger write dropped: %s (%s)", exc, batch[0].sql[:80])
            batch[0].settle(error=exc)
            return []
        for write, row in zip(batch, rows, strict=True):
            write.settle(row)
        self.stats.writes += len(batch)
        self.stats.batches += 1
        self.stats.largest = max(self.stats.largest, len(batch))
        return []

    def _failed(self, batch: list[_Write], exc: BaseException) -> list[_Write]:
        """Postgres unreachable: a waiting caller gets the error (and retries itself); a deferred write is
        tried again until ``ledger_retry_s`` has passed."""
        retry = []
        now = time.monotonic()
        for write in batch:
            if write.waited:
                write.settle(error=exc)
                continue
            write.give_up_at = write.give_up_at or now + get_settings().ledger_retry_s
            if now < write.give_up_at:
                retry.append(write)
            else:
                log.error("deferred ledger write dropped after retrying: %s (%s)", exc, write.sql[:80])
                write.settle(error=exc)
        if retry:
            log.warning("deferred ledger writes failed (%s); retrying", exc)
        return retry

    @staticmethod
    def _execute(batch: list[_Write]) -> list[dict[str, Any] | None]:
        # A batch with no waited write needs no flush: something else re-creates each of its writes.
        durable = any(w.waited for w in batch)
        with connection() as conn:
            if len(batch) == 1 and durable:  # alone: one autocommit statement, as without the writer
                cursors = [conn.execute(batch[0].sql, batch[0].params)]
            else:  # BEGIN, the writes and COMMIT in one pipeline: one round trip, one commit
                with pipelined_transaction(conn):
                    if not durable:
                        conn.execute("SET LOCAL synchronous_commit = off")
                    cursors = [conn.execute(w.sql, w.params) for w in batch]
        return [cur.fetchone() if w.waited and cur.pgresult.status == TUPLES_OK else None
                for cur, w in zip(cursors, batch, strict=True)]

    # --- the background flusher of deferred writes ------------------------------------------------------

    def _flush_deferred(self) -> None:
        with self._cond:
            while True:
                if not self._queue:
                    self._cond.wait()
                    continue
                due = min(w.due_at for w in self._queue) - time.monotonic()
                if due > 0 or self._committing:
                    self._cond.wait(max(due, 0.005))
                    continue
                self._lead()
                if self._queue and self._queue[0].give_up_at is not None:  # Postgres is down: back off
                    self._cond.wait(0.5)


_writers: PerProcess[GroupCommit] = PerProcess()


def ledger_writer() -> GroupCommit:
    """This process's group-commit writer (one per process: a forked child makes its own)."""
    return _writers.get("ledger", _new_writer)


def _new_writer() -> GroupCommit:
    writer = GroupCommit()
    atexit.register(_flush_at_exit, writer)  # a producer or worker exiting normally leaves nothing queued
    return writer


def _flush_at_exit(writer: GroupCommit) -> None:
    try:
        if not writer.flush(5.0):
            log.warning("exiting with %d ledger writes not committed", writer.queued())
    except Exception:  # the interpreter is going away; a lost `end` copy the reaper re-creates
        log.exception("flushing ledger writes at exit failed")
