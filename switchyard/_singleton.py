"""Per-process singletons: one object per process and key (a pool, a client, a saver), made once.

Connections must never cross a fork, so the process id is part of every key: a forked child finds none
of its parent's objects and makes its own, and the lock is replaced in the child (a thread of the parent
may have held it at the fork). A plain ``functools.lru_cache`` would share the parent's objects with the
child and makes no promise of one construction under concurrent first calls, hence this small class.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``get(key, make)``: this process's object for ``key``, made by ``make()`` on first use (double-
    checked under a lock, so concurrent first callers share one)."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, Hashable], T] = {}
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        full = (os.getpid(), key)
        item = self._items.get(full)
        if item is None:
            with self._lock:
                item = self._items.get(full)
                if item is None:
                    item = self._items[full] = make()
        return item

    def clear(self, close: Callable[[T], None]) -> None:
        """Forget every object: ``close`` this process's own, drop those inherited from a parent without
        touching them (their sockets are the parent's)."""
        pid = os.getpid()
        with self._lock:
            for full in list(self._items):
                item = self._items.pop(full)
                if full[0] == pid:
                    close(item)
