"""What a running job sees: ``JobContext`` (events, progress, stop checks) and the lease keeper.

Domain code takes a ``JobContext`` and never imports Celery, so it runs the same in a worker, a test
or a notebook (``JobContext.detached()`` publishes nothing and never stops).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from switchyard import constants, events, jobs
from switchyard.config import get_settings
from switchyard.errors import JobCancelled, LeaseLost, WorkerShuttingDown
from switchyard.redis_conn import get_redis

log = logging.getLogger(__name__)

# How often a job may ask Redis whether it should stop; checks in between are free.
STOP_CHECK_INTERVAL_S = 0.1


# Set in a worker process that received SIGTERM (threads and solo pools run jobs in that process; a
# prefork child learns it from the Redis flag instead). Such a worker starts no new job.
_shutting_down = threading.Event()


def mark_shutting_down() -> None:
    _shutting_down.set()


def shutting_down() -> bool:
    return _shutting_down.is_set()


def lease_owner() -> str:
    """This process's identity in ``jobs.lease_owner``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JobContext:
    """The running job's handle on the platform: emit events, report progress, check for stop."""

    def __init__(self, job_id: str, *, tenant: str = "default", attempt: int = 1, owner: str | None = None,
                 worker: str | None = None, publish: bool = True):
        self.job_id = job_id
        # Who the job runs for, fixed at the way in (the ledger row's tenant). Domain code resolves every
        # object a job names (thread, file, collection, adapter, cache entry, dataset) within it.
        self.tenant = tenant
        self.attempt = attempt
        self.owner = owner or lease_owner()
        self.worker = worker
        # What the job's function leaves for its pool's hooks (switchyard.hooks), e.g. the agent run's usage
        # when it stops early. Lives as long as this delivery; never stored.
        self.scratch: dict[str, Any] = {}
        self._publish = publish
        self._next_check = 0.0
        self._stop: type[Exception] | None = None

    @classmethod
    def detached(cls, job_id: str = "local", *, tenant: str = "default") -> JobContext:
        return cls(job_id, tenant=tenant, publish=False)

    # --- events ------------------------------------------------------------------------------------
    def emit(self, type: str, data: dict[str, Any] | None = None, *, defer: bool = False) -> events.Event | None:
        """Publish an event of the job. ``defer=True``: Postgres's copy rides this process's next ledger
        commit (``events.publish``), for an event the job's finish follows at once."""
        if not self._publish:
            return None
        return events.publish(self.job_id, type, data or {}, defer=defer)

    def progress(self, done: float, total: float | None = None, **extra: Any) -> None:
        data = {"done": done, "total": total, **extra}
        if total:
            data["fraction"] = round(done / total, 4)
        self.emit("progress", data)

    def metrics(self, *, defer: bool = False, **values: Any) -> None:
        self.emit("metrics", values, defer=defer)

    def message(self, text: str, **extra: Any) -> None:
        self.emit("message", {"text": text, **extra})

    # --- stopping ----------------------------------------------------------------------------------
    def stop_reason(self) -> type[Exception] | None:
        """Why the job must stop now (cancel, worker shutdown, lost lease), else ``None``.

        Checked against Redis at most every 100 ms, so it is cheap to call on every step.
        """
        if self._stop is not None or not self._publish:
            return self._stop
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + STOP_CHECK_INTERVAL_S
        if _lease_keeper.lost(self.job_id):
            self._stop = LeaseLost
        else:
            pipe = get_redis().pipeline(transaction=False)
            pipe.exists(constants.cancel_key(self.job_id))
            pipe.exists(constants.shutdown_key(self.worker or self.owner))
            cancelled, shutdown = pipe.execute()
            if cancelled or _lease_keeper.cancel_requested(self.job_id):
                self._stop = JobCancelled
            elif shutdown or _shutting_down.is_set():
                self._stop = WorkerShuttingDown
        return self._stop

    @property
    def cancelled(self) -> bool:
        return self.stop_reason() is JobCancelled

    def raise_if_stopped(self) -> None:
        """Call at step boundaries: raises ``JobCancelled``, ``WorkerShuttingDown`` or ``LeaseLost``."""
        reason = self.stop_reason()
        if reason is not None:
            raise reason(self.job_id)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking every 100 ms to honour a stop request."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.raise_if_stopped()
            time.sleep(min(left, STOP_CHECK_INTERVAL_S))
        self.raise_if_stopped()


class LeaseKeeper:
    """One thread per process renews the leases of every job this process runs.

    Each renewal is one UPDATE for all of them; it also picks up ``cancel_requested`` and notices a lease
    we lost (the reaper gave the job to another worker because we were too slow).
    """

    def __init__(self) -> None:
        self._jobs: dict[str, bool] = {}  # job_id -> cancel_requested
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, job_id: str) -> None:
        with self._lock:
            self._jobs[job_id] = False
            self._lost.discard(job_id)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="switchyard-lease", daemon=True)
                self._thread.start()

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
            self._lost.discard(job_id)

    def lost(self, job_id: str) -> bool:
        return job_id in self._lost

    def cancel_requested(self, job_id: str) -> bool:
        return self._jobs.get(job_id, False)

    def renew_now(self) -> None:
        with self._lock:
            ids = list(self._jobs)
        if not ids:
            return
        held = jobs.renew_leases(ids, lease_owner(), get_settings().lease_s)
        with self._lock:
            for job_id in ids:
                if job_id not in self._jobs:
                    continue
                if job_id in held:
                    self._jobs[job_id] = held[job_id]
                else:
                    self._lost.add(job_id)

    def _run(self) -> None:
        while True:
            time.sleep(max(get_settings().lease_s / 3, 0.2))
            try:
                self.renew_now()
            except Exception:  # a blip in Postgres must not kill the heartbeat thread
                log.exception("lease renewal failed")


_lease_keeper = LeaseKeeper()


def lease_keeper() -> LeaseKeeper:
    return _lease_keeper
