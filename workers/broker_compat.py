"""A work-around for the Redis transport after a lost broker connection (kombu 5.7 / Celery 5.7).

When the worker loses its Redis broker, Celery collects the connection (``Connection.collect`` drops
the transport's ``client``) and then closes it; the Redis channel's ``close`` restores unacknowledged
messages first and, with no ``client`` left, raises ``AttributeError`` - which Celery treats as an
unrecoverable error, so the worker exits instead of reconnecting (seen in tests/chaos/test_soak.py on a
Redis restart). Closing a channel whose connection is already collected must be a no-op: the broker is
gone, and what it held unacknowledged is re-sent by the reaper (RELIABILITY.md), not by this worker.
"""

from __future__ import annotations

import logging

from kombu.transport import redis as redis_transport

log = logging.getLogger("switchyard.workers")

_close = redis_transport.Channel.close


def _close_tolerating_collected(self: redis_transport.Channel) -> None:
    try:
        _close(self)
    except AttributeError:
        if getattr(self.connection, "client", None) is not None:
            raise
        log.warning("broker connection already collected; its channel closed without restoring messages")


if not getattr(redis_transport.Channel.close, "_switchyard", False):
    _close_tolerating_collected._switchyard = True  # type: ignore[attr-defined]
    redis_transport.Channel.close = _close_tolerating_collected
