"""Backpressure: a producer gets a clear refusal instead of growing an unbounded backlog.

A queue may hold at most ``SWITCHYARD_QUEUE_MAX_DEPTH`` queued jobs (``QUEUE_MAX_DEPTH_<QUEUE>`` per
queue; 0 or unset = unlimited), counted in the ledger, the source of truth, not in the broker (which
may have lost or duplicated messages). Past it, ``dispatch.enqueue`` raises ``QueueFullError``: HTTP 429
with ``Retry-After``, and an error from the Python client. The check and the insert are not one
transaction, so concurrent producers may overshoot by their number: a soft limit, on purpose (a lock
per queue would serialize every producer).
"""

from __future__ import annotations

from switchyard import jobs, task_catalog
from switchyard.config import get_settings, per_name
from switchyard.errors import QueueFullError


def max_depth(queue: str) -> int:
    """The queue's depth limit (0 = unlimited)."""
    per_queue = per_name("QUEUE_MAX_DEPTH", queue)
    return int(per_queue) if per_queue else get_settings().queue_max_depth


def check(kind: str) -> None:
    """Raise ``QueueFullError`` if the queue of ``kind`` already holds its limit of queued jobs."""
    queue = task_catalog.queue_for(kind)
    limit = max_depth(queue)
    if limit <= 0:
        return
    kinds = [name for name, spec in task_catalog.TASKS.items() if spec.queue == queue]
    depth = jobs.queued_depth(kinds, limit)
    if depth >= limit:
        raise QueueFullError(queue, depth, limit, get_settings().queue_full_retry_after_s)
