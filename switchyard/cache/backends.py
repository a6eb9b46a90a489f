"""Connections to the cache's stores, and what happens when one is down.

Redis or Postgres down means a miss and a warning, never a failed LLM call. The cache's Redis client
therefore has short timeouts and no retries (redis-py's default retries with backoff would add
seconds to every call while Redis is down), and a store that failed is skipped for ``retry_after_s``
so calls go straight to the model instead of timing out one by one.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from switchyard.cache.config import get_cache_settings
from switchyard.config import get_settings
from switchyard.errors import ConfigurationError

log = logging.getLogger("switchyard.cache")

SOCKET_TIMEOUT_S = 1.0

_clients: dict[tuple[int, str], redis.Redis] = {}
_async_clients: dict[tuple[int, str, int], redis.asyncio.Redis] = {}
_lock = threading.Lock()


def cache_redis_url() -> str:
    url = get_cache_settings().redis_url or get_settings().redis_url
    if not url:
        raise ConfigurationError("no Redis for the LLM cache: set SWITCHYARD_CACHE_REDIS_URL or SWITCHYARD_REDIS_URL")
    return url


def _options() -> dict:
    return {"socket_timeout": SOCKET_TIMEOUT_S, "socket_connect_timeout": SOCKET_TIMEOUT_S,
            "retry": Retry(NoBackoff(), 0), "health_check_interval": 30}


def cache_redis(url: str | None = None) -> redis.Redis:
    """This process's client for the cache Redis (thread-safe, pooled)."""
    url = url or cache_redis_url()
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = redis.Redis.from_url(url, **_options())
    return client


def cache_redis_async(url: str | None = None) -> redis.asyncio.Redis:
    """A client for the running event loop (an asyncio client's connections belong to one loop)."""
    import asyncio

    url = url or cache_redis_url()
    key = (os.getpid(), url, id(asyncio.get_running_loop()))
    client = _async_clients.get(key)
    if client is None:
        client = _async_clients[key] = redis.asyncio.Redis.from_url(url, **_options())
    return client


class Breaker:
    """Skips a failed store for a while; warns once per outage, and once when it is back."""

    def __init__(self, name: str):
        self.name = name
        self._until = 0.0
        self._down = False

    def available(self) -> bool:
        return time.monotonic() >= self._until

    def failed(self, exc: BaseException) -> None:
        self._until = time.monotonic() + get_cache_settings().retry_after_s
        if not self._down:
            self._down = True
            log.warning("LLM cache: %s unavailable (%s: %s); calls go to the model, retrying in %.0fs",
                        self.name, type(exc).__name__, exc, get_cache_settings().retry_after_s)

    def succeeded(self) -> None:
        if self._down:
            self._down = False
            log.warning("LLM cache: %s is back", self.name)


REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
