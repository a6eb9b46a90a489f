"""One Redis client per process and URL (redis-py's client is thread-safe and pools connections)."""

from __future__ import annotations

import os
import threading

import redis
import redis.asyncio

from switchyard.config import get_settings
from switchyard.errors import ConfigurationError

_clients: dict[tuple[int, str], redis.Redis] = {}
_lock = threading.Lock()


def redis_url() -> str:
    url = get_settings().redis_url
    if not url:
        raise ConfigurationError(
            "SWITCHYARD_REDIS_URL is not set (run `switchyard dev`, or `set -a; . .switchyard/dev.env`)"
        )
    return url


def get_redis(url: str | None = None) -> redis.Redis:
    url = url or redis_url()
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(url, health_check_interval=30)
                _clients[key] = client
    return client


def get_async_redis(url: str | None = None) -> redis.asyncio.Redis:
    """An asyncio client for the running event loop (a client's connections belong to one loop)."""
    import asyncio

    import redis.asyncio

    url = url or redis_url()
    key = (os.getpid(), url, id(asyncio.get_running_loop()))
    client = _async_clients.get(key)
    if client is None:
        client = _async_clients[key] = redis.asyncio.Redis.from_url(url, health_check_interval=30)
    return client


_async_clients: dict[tuple[int, str, int], redis.asyncio.Redis] = {}
