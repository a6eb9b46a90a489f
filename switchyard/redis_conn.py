"""One Redis client per process and URL (redis-py's client is thread-safe and pools connections)."""

from __future__ import annotations

import os

import redis
import redis.asyncio

from switchyard._singleton import PerProcess
from switchyard.config import get_settings
from switchyard.errors import ConfigurationError

_clients: PerProcess[redis.Redis] = PerProcess()  # by URL

# Reconnection (RELIABILITY.md): redis-py already retries a command on ConnectionError/TimeoutError
# (10 times, exponential backoff with jitter up to 1 s, on a fresh connection) and reconnects a pub/sub
# on its next read; we add a health check of idle connections and TCP keepalive, so a restarted Redis
# is noticed before a command is lost on a dead socket. Longer outages surface as ConnectionError:
# events.publish then keeps durable types in Postgres, and subscribers reconnect (events.subscribe).
CLIENT_OPTIONS = {"health_check_interval": 30, "socket_keepalive": True, "socket_connect_timeout": 5}


def redis_url() -> str:
    url = get_settings().redis_url
    if not url:
        raise ConfigurationError(
            "SWITCHYARD_REDIS_URL is not set (run `switchyard dev`, or `set -a; . .switchyard/dev.env`)"
        )
    return url


def get_redis(url: str | None = None) -> redis.Redis:
    url = url or redis_url()
    return _clients.get(url, lambda: redis.Redis.from_url(url, **CLIENT_OPTIONS))


def get_async_redis(url: str | None = None) -> redis.asyncio.Redis:
    """An asyncio client for the running event loop (a client's connections belong to one loop)."""
    import asyncio

    import redis.asyncio

    url = url or redis_url()
    key = (os.getpid(), url, id(asyncio.get_running_loop()))
    client = _async_clients.get(key)
    if client is None:
        client = _async_clients[key] = redis.asyncio.Redis.from_url(url, **CLIENT_OPTIONS)
    return client


_async_clients: dict[tuple[int, str, int], redis.asyncio.Redis] = {}
