"""The in-process layer: a size-bounded LRU of encoded values, in front of Redis.

It holds bytes, not generations, so a caller that mutates the answer it got (LangChain sets ids and
metadata on messages) never changes what the next caller gets. Entries also age out after
``ttl_s``: invalidation from another process reaches this layer within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cachetools import LRUCache


class LocalLRU:
    def __init__(self, maxsize: int, ttl_s: float):
        self.ttl_s = ttl_s
        self._data: LRUCache[str, tuple[float, bytes]] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()  # cachetools caches are not thread-safe (the agent pool is threads)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                del self._data[key]
                return None
            return item[1]

    def put(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        ttl = self.ttl_s if ttl_s is None else min(self.ttl_s, ttl_s)
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)

    def discard(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self, match: Callable[[str], bool] | None = None) -> int:
        """Drop the entries whose key ``match`` accepts (all by default); returns how many."""
        with self._lock:
            doomed = [k for k in self._data if match is None or match(k)]
            for k in doomed:
                del self._data[k]
            return len(doomed)

    def __len__(self) -> int:
        return len(self._data)
