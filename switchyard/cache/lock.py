"""Stampede protection: concurrent identical misses, in any number of processes, make one LLM call.

LangChain's ``BaseCache`` has only ``lookup`` and ``update``, with the model call in between, so the
lock is taken *inside* ``lookup``: on a miss, the first caller takes a Redis lock on the entry
(``SET NX PX``, redis-py's ``Lock``) and gets ``None`` back — LangChain calls the model — and its
``update`` stores the answer and releases the lock. Every other caller finds the lock taken and polls
the entry (5 ms doubling to 100 ms) until the answer lands, which its ``lookup`` then returns as a hit.

Failure paths, none of which blocks anyone past ``lock_timeout_s`` or caches an error:
- the model raises: LangChain never calls ``update``; ``ReleaseOnError`` (a callback handler the
  factory puts on the model) releases the lock at ``on_llm_error``, and the first waiter to see the
  lock gone takes it and calls the model itself;
- the holder dies, or the cache is used without the handler (``set_llm_cache``): the lock expires
  after ``lock_timeout_s`` and a waiter takes over;
- a waiter that waited ``lock_timeout_s`` calls the model itself; Redis down: no lock, just a miss.
Polling rather than pub/sub: a notification sent between a waiter's GET and its SUBSCRIBE is lost,
and the poll is a GET on a key that is about to exist anyway.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from redis.exceptions import LockError

from switchyard.cache.keys import lock_key

# The entry key whose lock this context took in ``lookup`` (the model call runs in the same context).
pending_key: ContextVar[str | None] = ContextVar("switchyard_cache_pending", default=None)

POLL_START_S = 0.005
POLL_MAX_S = 0.1


class StampedeLocks:
    """The locks this process holds, by entry key (any thread may release: ``thread_local=False``)."""

    def __init__(self, client: Callable[[], Any], timeout_s: float):
        self._client = client
        self.timeout_s = timeout_s
        self._held: dict[str, Any] = {}

    def try_acquire(self, key: str) -> bool:
        lock = self._client().lock(lock_key(key), timeout=self.timeout_s, blocking=False, thread_local=False)
        if not lock.acquire(blocking=False):
            return False
        self._held[key] = lock
        return True

    def held(self, key: str) -> bool:
        return key in self._held

    def release(self, key: str) -> None:
        lock = self._held.pop(key, None)
        if lock is not None:
            with contextlib.suppress(LockError, OSError, Exception):
                lock.release()  # expired already (a slow call) or Redis gone: nothing to give back

    def wait_for(self, key: str, get: Callable[[str], bytes | None]) -> tuple[bytes | None, bool]:
        """Wait for another process's answer to ``key``: ``(value, False)``, or ``(None, True)`` once this
        caller holds the lock (it calls the model), or ``(None, False)`` at the timeout."""
        deadline = time.monotonic() + self.timeout_s
        delay = POLL_START_S
        while True:
            if self.try_acquire(key):
                value = get(key)  # the holder may have stored it between our miss and our SET NX
                if value is not None:
                    self.release(key)
                    return value, False
                return None, True
            if time.monotonic() >= deadline:
                return None, False
            time.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)
            value = get(key)
            if value is not None:
                return value, False


class ReleaseOnError(BaseCallbackHandler):
    """Releases the stampede lock of a model call that failed, so waiters take over at once."""

    run_inline = True  # in the caller's context, where ``pending_key`` was set

    def __init__(self, release: Callable[[str], None]):
        self._release = release

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        key = pending_key.get()
        if key is not None:
            pending_key.set(None)
            self._release(key)
