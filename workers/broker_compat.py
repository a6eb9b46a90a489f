"""A work-around for the Redis transport after a lost broker connection (kombu 5.7 / Celery 5.7).

When the worker loses its Redis broker, Celery collects the connection (``Connection.collect`` drops
the transport's ``client``), but the channel lives on: closing it (which restores unacknowledged
messages first) or acknowledging a task that finished meanwhile asks the collected connection for its
parameters and raises ``AttributeError``. That is not one of the transport's connection errors, so
Celery treats it as an unrecoverable error and the worker exits instead of reconnecting (seen in the
soak, tests/chaos/test_soak.py, on Redis restarts). We turn it into the connection error it is: Celery
then logs it ("Couldn't ack ...") and reconnects. What the lost broker held unacknowledged is re-sent by
the reaper (RELIABILITY.md), not by this worker.
"""

from __future__ import annotations

import redis.exceptions
from kombu.transport import redis as redis_transport

_connparams = redis_transport.Channel._connparams


def _connparams_or_connection_error(self: redis_transport.Channel, asynchronous: bool = False) -> dict:
    if self.connection.client is None:
        raise redis.exceptions.ConnectionError("the broker connection was collected after a connection loss")
    return _connparams(self, asynchronous=asynchronous)


if not getattr(redis_transport.Channel._connparams, "_switchyard", False):
    _connparams_or_connection_error._switchyard = True  # type: ignore[attr-defined]
    redis_transport.Channel._connparams = _connparams_or_connection_error
