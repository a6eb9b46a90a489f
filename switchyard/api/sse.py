"""Server-Sent Event responses that drop a client which stopped reading (RELIABILITY.md, "Backpressure").

What one SSE client can hold in the API process is bounded without a queue of our own: the stream pulls
one event at a time from ``events.asubscribe`` and hands it to the server, and uvicorn stops taking
writes once a connection's write buffer passes its high-water mark (64 KiB), so the next event waits in
Redis, not here. A client that stops reading (a full TCP receive window) would park its stream in that
wait forever, holding a task and a Redis connection; ``send_timeout`` (``SSE_SEND_TIMEOUT_S``) ends it.
The server then closes the connection once the client has taken what was already written, and the
client resumes from its ``Last-Event-ID``: every event is in the log (Redis, and Postgres's copy).
Publishers never wait on any of this: ``PUBLISH`` does not wait for subscribers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from switchyard.config import get_settings

log = logging.getLogger("switchyard.api.sse")

# A comment line this often keeps proxies from closing a quiet stream.
SSE_PING_S = 15.0


class EventStream(EventSourceResponse):
    """An ``EventSourceResponse`` with keep-alive comments and a send timeout from the settings."""

    def __init__(self, content: AsyncIterable[dict[str, str]], *, send_timeout: float | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(content, ping=SSE_PING_S, headers=headers,
                         ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
                         send_timeout=get_settings().sse_send_timeout_s if send_timeout is None else send_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            # Expected, not a server error: the stream's generator is closed (its Redis connection
            # released) and the server closes the connection. uvicorn adds a line of its own ("returned
            # without completing response").
            client = scope.get("client")
            log.warning("SSE client %s stopped reading %s for %.0fs; dropped (it resumes with Last-Event-ID)",
                        f"{client[0]}:{client[1]}" if client else "?", scope.get("path"), self.send_timeout)
